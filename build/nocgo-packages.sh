#!/usr/bin/env bash
# Lists the packages of this module that build, with their tests, without cgo: those whose own
# or test dependencies include no cgo-only module (OpenCV's gocv, onnxruntime_go).
set -euo pipefail
CGO_ENABLED=0 go list -test -f '{{.ImportPath}}|{{join .Deps " "}}' ./... |
	awk -F'|' '{
		p = $1; sub(/ \[.*\]$/, "", p); sub(/\.test$/, "", p); sub(/_test$/, "", p)
		all[p] = 1
		if ($2 ~ /(^| )(gocv\.io\/x\/gocv|github\.com\/yalue\/onnxruntime_go)( |$)/) cgo[p] = 1
	} END { for (p in all) if (!(p in cgo)) print p }' | sort
