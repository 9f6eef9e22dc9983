#!/usr/bin/env bash
# Sets up, builds and runs every test (GoogleTest and pytest, all through CTest).
# Extra arguments go to ctest (e.g. -R parity).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --parallel "$(nproc)" --output-on-failure "$@"
