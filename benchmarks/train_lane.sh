#!/bin/bash
# Train several nets one after another on one core (a "lane"); start two lanes to use two cores.
#
#   benchmarks/train_lane.sh OUT CONFIG ITEM...
#
# ITEM is a named model (mobilenetv2-0.5, lenet-5, ...) or NAME=path/to/arch.json.  Each net goes
# to OUT/NAME with the training options of CONFIG (a TrainConfig YAML, e.g. "epochs: 5\nthreads: 1")
# and seed 0; a net whose OUT/NAME/metrics.json exists is skipped, one with a folder is resumed.
# The latency each training measures shares the machine with the other lane: re-time all nets side
# by side afterwards with `directnas report OUT --out OUT/report --remeasure`.
set -u
out=$1; cfg=$2; shift 2
mkdir -p "$out"
for item in "$@"; do
  name=${item%%=*}; src=${item#*=}
  if [[ $item == *=* ]]; then what=(--arch "$src"); else what=(--model "$name"); fi
  dir=$out/$name
  if [ -f "$dir/metrics.json" ]; then echo "skip $name"; continue; fi
  resume=(); [ -d "$dir" ] && resume=(--resume)
  echo "$(date +%T) start $name"
  OMP_NUM_THREADS=1 python -m directnas train "${what[@]}" --config "$cfg" --threads 1 --repeats 20 \
    --warmup 5 --seed 0 --out "$dir" "${resume[@]}" > "$out/$name.log" 2>&1
  echo "$(date +%T) end $name rc=$?"
done
