#!/usr/bin/env bash
# The checks that need a GPU, in one run on a machine that has one: set up, build (CUDA LibTorch
# when nvcc is found), export a random vits16, run it with dinov3-model-check, run the engine's
# unit tests on the GPU, the integration tests and the benchmark suite (its GPU section of
# BENCHMARKS.md; the peers' packages need PyPI).
#   scripts/gpu-check.sh [--device=cuda:0]
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda:0
while [ $# -gt 0 ]; do
  case "$1" in
    --device=*) device=${1#--device=} ;;
    --device) device=$2; shift ;;
    *) echo "usage: scripts/gpu-check.sh [--device=cuda:N]" >&2; exit 2 ;;
  esac
  shift
done
step() { echo; echo "gpu-check: $*"; }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
step "setup and build"
scripts/setup.sh
scripts/build.sh

model=build/gpu-check/vits16.pt
step "exporting a random vits16 to $model"
mkdir -p "$(dirname "$model")"
.venv/bin/python -m model.export --random --variant vits16 --seed 0 --output "$model"

step "dinov3-model-check on $device"
build/bin/dinov3-model-check --device="$device" "$model"
build/bin/dinov3-model-check --device="$device" --batch=8 "$model"

step "engine unit tests on $device"
ctest --test-dir build -R model_runtime_fixtures --output-on-failure
DINOV3_ENGINE_TEST_DEVICE="$device" \
  DINOV3_ENGINE_TEST_MODEL=build/tests/unit/model/runtime/fixtures/model.pt build/bin/engine_test

step "integration tests"
ctest --test-dir build -R "EmbeddingServiceTest|ClientCliTest|pytest_tests_integration" \
  --output-on-failure

step "benchmark suite on $device"
scripts/bench.sh --no-build --device "$device"
step "ok"
