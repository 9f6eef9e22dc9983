#!/usr/bin/env bash
# Configures (once) and builds the C++ tree into build/ (Release). Binaries land in build/bin/.
# Environment: BUILD_DIR (default build), CMAKE_ARGS (extra configure arguments, first run only).
# Arguments go to `cmake --build` (e.g. --target dinov3-server).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  mkdir -p "$build_dir"
  cmake -S . -B "$build_dir" "${generator[@]}" ${CMAKE_ARGS:-} >"$build_dir/configure.log" 2>&1 \
    || { cat "$build_dir/configure.log"; rm -f "$build_dir/CMakeCache.txt"; exit 1; }
fi
cmake --build "$build_dir" --parallel "$(nproc)" "$@"
