# Sourced by scripts/sanitize.sh and scripts/fuzz.sh: the ASan+UBSan build directory, its
# configure arguments, and the sanitizer runtime options for everything run from it.
#
#   DINOV3_ASAN_BUILD_DIR   build-asan unless set already (not BUILD_DIR, which names the
#                           Release build elsewhere)
#   DINOV3_ASAN_CMAKE_ARGS  clang, DINOV3_SANITIZE=address,undefined, DINOV3_FUZZ=ON and the
#                           CPU-only LibTorch link (no CUDA toolkit needed; CI compiles and runs
#                           this link here)
#   ASAN_OPTIONS, UBSAN_OPTIONS: stop at the first report, with a stack trace, and check leaks
#                           (LeakSanitizer) at exit. No suppressions: LibTorch, OpenCV and gRPC
#                           (uninstrumented) report nothing in the tests. Should one ever be
#                           needed, add a suppressions file here, one commented entry per
#                           third-party frame, never for the project's own code.
# shellcheck shell=bash
DINOV3_ASAN_BUILD_DIR=${DINOV3_ASAN_BUILD_DIR:-build-asan}
DINOV3_ASAN_CMAKE_ARGS="-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release \
-DDINOV3_SANITIZE=address,undefined -DDINOV3_FUZZ=ON -DDINOV3_TORCH_CUDA=OFF"

# detect_stack_use_after_return: also catch returned pointers to stack memory.
# check_initialization_order / strict_init_order: static initialisers reading other globals.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:print_stacktrace=1:detect_leaks=1\
:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1"
