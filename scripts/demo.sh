#!/usr/bin/env bash
# Installs everything, then runs the main job on the embedded default: profile this CPU,
# search on Fashion-MNIST for a latency target, train the found net from scratch, measure it,
# and write a report with pictures.  Re-running the same command resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
OUT="${1:-runs/demo}"
# 2x the fastest net of the space as timed on this machine before the search (or ms, e.g.
# TARGET_LATENCY=0.15).  Until 2026-12-03 the demo asked 1.5x of the fastest net *as the profile
# predicted it*, 0.080-0.117 ms on machine F where it runs at 0.063 ms: those demos were 1.9x to
# 2.8x of the timed fastest net.  2x keeps the net of the 93.49 % demo (T 0.119 ms there).
TARGET="${TARGET_LATENCY:-2x}"
# searched for, measured in and shipped to ExecuTorch + XNNPACK (README: why this runtime)
BACKEND="${BACKEND:-executorch-xnnpack}"
# 26 epochs: the demo net on machine F read 92.95 % after 20 (BENCHMARKS.md); a fresh clone's
# whole demo took 44 min at 20 epochs (94 s each), so 26 keeps it near 54 min
EPOCHS="${TRAIN_EPOCHS:-26}"
# the references (4 random nets of the window, mobilenetv2-0.35, mobilenetv3-small and the
# searched net retrained at their budget) share a third of the searched net's epochs: 1 epoch
# each at 26.  The old default (ten nets at 2 epochs) added an hour (2026-12-07); REFERENCES_EPOCHS
# sets their epochs, NO_REFERENCES=1 trains none (about 46 min in all on 2 cores)
REFS=()
[ -n "${REFERENCES_EPOCHS:-}" ] && REFS=(--references-epochs "$REFERENCES_EPOCHS")
[ "${NO_REFERENCES:-0}" = 1 ] && REFS=(--no-references)
directnas run --space fashion-mnist --backend "$BACKEND" --target-latency "$TARGET" \
  --train-epochs "$EPOCHS" ${REFS[@]+"${REFS[@]}"} --out "$OUT"
