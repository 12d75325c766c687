#!/usr/bin/env bash
# Installs everything, then runs the main job on the embedded default: a hardware-aware search
# on Fashion-MNIST for this CPU, training of the found net, and its measured latency.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
OUT="${1:-runs/demo}"
TARGET="${TARGET_LATENCY:-1.5}"
directnas search --space fashion-mnist --target-latency "$TARGET" --out "$OUT/search"
directnas train --arch "$OUT/search/arch.json" --out "$OUT/train"
echo "architecture: $OUT/search/arch.json"
echo "report:       $OUT/train/metrics.json"
