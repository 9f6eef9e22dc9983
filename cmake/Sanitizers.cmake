# DINOV3_SANITIZE: build everything with sanitizers, e.g. for the ThreadSanitizer job of .ci/run.
#   ""                  off (default)
#   "thread"            ThreadSanitizer
#   "address,undefined" AddressSanitizer + UndefinedBehaviorSanitizer
# Adds -fsanitize=<value> -fno-omit-frame-pointer -g -O1 to every target's compile and link flags.
# Prebuilt dependencies (absl, gRPC, LibTorch) stay uninstrumented; only the project's own code is
# checked, so run the torch-free tests (batching_test) under it.
set(DINOV3_SANITIZE "" CACHE STRING "Sanitizers to build with: \"\", thread, address,undefined")
set_property(CACHE DINOV3_SANITIZE PROPERTY STRINGS "" thread "address,undefined")

if(DINOV3_SANITIZE)
  if(NOT DINOV3_SANITIZE MATCHES "^(thread|address,undefined)$")
    message(FATAL_ERROR "DINOV3_SANITIZE must be \"\", thread or address,undefined; got "
                        "\"${DINOV3_SANITIZE}\"")
  endif()
  set(_dinov3_sanitize_flags -fsanitize=${DINOV3_SANITIZE} -fno-omit-frame-pointer -g -O1)
  add_compile_options(${_dinov3_sanitize_flags})
  add_link_options(${_dinov3_sanitize_flags})
  message(STATUS "Sanitizers: ${DINOV3_SANITIZE}")
endif()
