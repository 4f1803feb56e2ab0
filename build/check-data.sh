#!/usr/bin/env bash
# Checks that the shared test data is present; says what is missing and how to get it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA="${EDGE_DATA_DIR:-$ROOT/../shared/data}"
need=(
	models/yolox_nano_coco_416.onnx
	models/coco.names
	videos/pedestrians_pets09_s2l1_vtest.avi
	videos/traffic_highway_fixed_1.mp4
	videos/mot15_tud_campus.mp4
	gt/mot15/PETS09-S2L1/gt/gt.txt
	images/darknet_dog.jpg
)
miss=()
for f in "${need[@]}"; do [ -s "$DATA/$f" ] || miss+=("$f"); done
if [ "${#miss[@]}" -gt 0 ]; then
	cat >&2 <<MSG
deps: the shared test data is missing from $DATA:
$(printf '  - %s\n' "${miss[@]}")
Vigil never commits models or videos. Put the shared data folder (models/, videos/, gt/, images/;
see its README) beside the project at ../shared/data, or point EDGE_DATA_DIR at a copy of it.
MSG
	exit 1
fi
