#!/usr/bin/env bash
# Prints the Debian package version: 0.1.0~git<commit date>.<short hash>, +dirty when the
# tree has changes (Debian versions must start with a digit; git describe may not).
set -euo pipefail
cd "$(dirname "$0")/.."
base=0.1.0
when=$(git log -1 --format=%cd --date=format:%Y%m%d%H%M 2>/dev/null || echo 0)
hash=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
if ! git diff --quiet HEAD 2>/dev/null; then dirty=+dirty; fi
echo "${base}~git${when}.${hash}${dirty}"
