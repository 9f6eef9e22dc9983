#!/usr/bin/env bash
# The C++ tests and the fuzzers under AddressSanitizer + UndefinedBehaviorSanitizer, in
# build-asan/ (clang, the CPU-only LibTorch link; tests/sanitizers/env.sh has the configure
# arguments and the sanitizer runtime options).
#
#   scripts/sanitize.sh [--fuzz-seconds N]   build, run every GoogleTest entry of CTest (unit and
#                                           integration tests, the dinov3-server they start is
#                                           the ASan build) and the fuzz corpus regressions,
#                                           then fuzz each target for N seconds (default 60;
#                                           0 skips fuzzing) with scripts/fuzz.sh --no-build
#   scripts/sanitize.sh --build TARGET...    only configure (once) and build TARGETs
#
# The pytest entries are left out: they test Python code and the Release build. Exits non-zero
# on any failing test, sanitizer report or fuzzer finding.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/sanitizers/env.sh

# What the tests need: every GoogleTest executable, the server, client and model check the
# tests and .ci/run start, and the fuzzers. No benchmarks or tools.
targets=(dinov3-server dinov3-client dinov3-model-check
  config_test config_server_cli_test bench_test model_runtime_test image_decoder_test
  resize_plan_test opencv_limits_test batching_test engine_test common_test metrics_test
  pipeline_test kserve_test http_test client_pictures_test client_support_test
  server_integration_test image_decode_fuzzer embed_request_fuzzer http_request_fuzzer)

build() {
  BUILD_DIR=$DINOV3_ASAN_BUILD_DIR CMAKE_ARGS=$DINOV3_ASAN_CMAKE_ARGS scripts/build.sh \
    --target "$@"
}

fuzz_seconds=60
case "${1:-}" in
  --build) shift; build "$@"; exit 0 ;;
  --fuzz-seconds) fuzz_seconds=$2 ;;
  "") ;;
  *) echo "usage: $0 [--fuzz-seconds N] | --build TARGET..." >&2; exit 2 ;;
esac

build "${targets[@]}"
# CTest entries of the C++ tests: everything except the pytest ones (the model fixture export,
# a Python step, runs as the fixture the engine, runtime and integration tests require) and the
# soak test (its memory-growth check means nothing with ASan's quarantine).
ctest --test-dir "$DINOV3_ASAN_BUILD_DIR" --parallel "$(nproc)" --output-on-failure \
  --exclude-regex '^pytest_' --label-exclude soak
if [ "$fuzz_seconds" -gt 0 ]; then
  scripts/fuzz.sh --no-build --seconds "$fuzz_seconds"
fi
