#!/usr/bin/env bash
# The arm64 agent, cross-built here, run under qemu: `vigil-agent version`, and `detect` on one
# shared image compared with the amd64 agent's detections (same objects, boxes within 1 px,
# scores within 0.01). Emulation is ~300x slower: one image only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export EDGE_DATA_DIR=${EDGE_DATA_DIR:-$ROOT/../shared/data}
IMG=${IMG:-$EDGE_DATA_DIR/images/darknet_dog.jpg}
log() { printf 'test-arm64: %s\n' "$*" >&2; }
[ -x bin/arm64/vigil-agent ] || make -s build-arm64
[ -x bin/vigil-agent ] || make -s build
file bin/arm64/vigil-agent | grep -q aarch64 || { log "bin/arm64/vigil-agent is not an arm64 binary"; exit 1; }

v=$(timeout 300 build/run-arm64 vigil-agent version) || { log "arm64 vigil-agent version failed"; exit 1; }
log "arm64: $v"
[ "$v" = "$(bin/vigil-agent version)" ] || { log "arm64 says $v, amd64 says $(bin/vigil-agent version)"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin/vigil-agent detect "$IMG" >"$tmp/amd64.json"
start=$(date +%s)
timeout 900 build/run-arm64 vigil-agent detect "$IMG" >"$tmp/arm64.json" || { log "arm64 detect failed"; exit 1; }
log "arm64 detect under qemu took $(( $(date +%s) - start )) s"
python3 - "$tmp/amd64.json" "$tmp/arm64.json" <<'PY'
import json, sys
a = json.loads(open(sys.argv[1]).readline())
b = json.loads(open(sys.argv[2]).readline())
oa, ob = a["objects"], b["objects"]
assert oa, "amd64 found nothing: the comparison would prove nothing"
assert len(oa) == len(ob), f"amd64 found {len(oa)} objects, arm64 {len(ob)}"
key = lambda o: (o["label"], o["box_px"][0], o["box_px"][1])
worst_px = worst_score = 0.0
for x, y in zip(sorted(oa, key=key), sorted(ob, key=key)):
    assert x["label"] == y["label"], f'{x["label"]} vs {y["label"]}'
    px = max(abs(p - q) for p, q in zip(x["box_px"], y["box_px"]))
    sc = abs(x["score"] - y["score"])
    assert px <= 1, f'{x["label"]}: boxes {x["box_px"]} vs {y["box_px"]}'
    assert sc <= 0.01, f'{x["label"]}: scores {x["score"]} vs {y["score"]}'
    worst_px, worst_score = max(worst_px, px), max(worst_score, sc)
print(f"test-arm64: {len(oa)} objects ({', '.join(sorted(o['label'] for o in oa))}) match: boxes within {worst_px:g} px, scores within {worst_score:.3f}; inference {a['inference_ms']:.0f} ms amd64, {b['inference_ms']:.0f} ms arm64 under qemu", file=sys.stderr)
PY
