# DINOV3_SANITIZE: build everything with sanitizers.
#   ""                  off (default)
#   "thread"            ThreadSanitizer (the TSan job of .ci/run)
#   "address,undefined" AddressSanitizer + UndefinedBehaviorSanitizer (scripts/sanitize.sh):
#                       also -fno-sanitize-recover=all, so undefined behaviour aborts the process
#                       instead of printing and going on (a test or fuzzer cannot miss it), and
#                       -g1 (line tables only: enough for symbolized reports, and the torch-heavy
#                       sources compile faster than with full -g).
# Adds -fsanitize=<value> -fno-omit-frame-pointer -g -O1 to every target's compile and link flags.
# Prebuilt dependencies (absl, gRPC, OpenCV, LibTorch) stay uninstrumented; only the project's own
# code is checked. The runtime options of the ASan+UBSan runs are in tests/sanitizers/env.sh.
#
# DINOV3_FUZZ (cmake/Fuzzing.cmake): the libFuzzer targets of tests/fuzz, on top of
# DINOV3_SANITIZE=address,undefined with clang.
set(DINOV3_SANITIZE "" CACHE STRING "Sanitizers to build with: \"\", thread, address,undefined")
set_property(CACHE DINOV3_SANITIZE PROPERTY STRINGS "" thread "address,undefined")

if(DINOV3_SANITIZE)
  if(NOT DINOV3_SANITIZE MATCHES "^(thread|address,undefined)$")
    message(FATAL_ERROR "DINOV3_SANITIZE must be \"\", thread or address,undefined; got "
                        "\"${DINOV3_SANITIZE}\"")
  endif()
  set(_dinov3_sanitize_flags -fsanitize=${DINOV3_SANITIZE} -fno-omit-frame-pointer -g -O1)
  if(DINOV3_SANITIZE STREQUAL "address,undefined")
    list(APPEND _dinov3_sanitize_flags -fno-sanitize-recover=all -g1)
  endif()
  add_compile_options(${_dinov3_sanitize_flags})
  add_link_options(${_dinov3_sanitize_flags})
  message(STATUS "Sanitizers: ${DINOV3_SANITIZE}")
endif()

include(${CMAKE_CURRENT_LIST_DIR}/Fuzzing.cmake)
