#!/usr/bin/env bash
# The main job, one command on a fresh machine: set up, build, make sure a model exists, run it.
# Until the gRPC server exists this runs the C++ runtime smoke check (dinov3-model-check).
#
# The model is $DINOV3_MODEL if set; otherwise models/dinov3-vits16-untrained.pt, a
# deterministic RANDOM (untrained) vits16 exported on first use. Extra arguments go to the check.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=${DINOV3_MODEL:-models/dinov3-vits16-untrained.pt}
if [ ! -f "$model" ]; then
  if [ -n "${DINOV3_MODEL:-}" ]; then
    echo "run: DINOV3_MODEL=$model does not exist" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$model")"
  echo "run: exporting the default model (random weights, UNTRAINED) to $model"
  .venv/bin/python -m model.export --random --variant vits16 --seed 0 --output "$model.tmp"
  mv "$model.tmp" "$model"
fi
exec build/bin/dinov3-model-check "$@" "$model"
