# DINOV3_FUZZ: build the libFuzzer targets of tests/fuzz (scripts/fuzz.sh runs them).
# Needs clang (libFuzzer ships with it; Debian: libclang-rt-14-dev) and
# DINOV3_SANITIZE=address,undefined, so a fuzzer finds memory errors and undefined behaviour, not
# only crashes. When on, all of the project's code gets -fsanitize=fuzzer-no-link (coverage and
# comparison tracing for libFuzzer, no libFuzzer main), so the same build directory serves the
# unit tests and the fuzzers; dinov3_add_fuzzer() links -fsanitize=fuzzer into a fuzz executable
# only and registers a CTest entry that runs it over its committed seed corpus (regression mode).
option(DINOV3_FUZZ "Build the libFuzzer targets (clang, DINOV3_SANITIZE=address,undefined)" OFF)

if(DINOV3_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DINOV3_FUZZ needs clang (libFuzzer); configure with "
                        "-DCMAKE_CXX_COMPILER=clang++, got ${CMAKE_CXX_COMPILER_ID}")
  endif()
  if(NOT DINOV3_SANITIZE STREQUAL "address,undefined")
    message(FATAL_ERROR "DINOV3_FUZZ needs -DDINOV3_SANITIZE=address,undefined")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
  message(STATUS "Fuzzing: libFuzzer targets in tests/fuzz")
endif()

# dinov3_add_fuzzer(<name> SOURCES <files...> LIBRARIES <targets...> CORPUS <dir>)
# Adds the executable <name> (libFuzzer's main; <name> ends in _fuzzer) and the test
# fuzz_<stem>_corpus (<name> = <stem>_fuzzer), which runs every file of CORPUS once (-runs=0: no
# mutation) and fails on any crash, leak, timeout or sanitizer report.
function(dinov3_add_fuzzer name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;LIBRARIES" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBRARIES})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  string(REGEX REPLACE "_fuzzer$" "" _stem ${name})
  add_test(NAME fuzz_${_stem}_corpus
           COMMAND ${name} -runs=0 -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=512 ${ARG_CORPUS})
  set_tests_properties(fuzz_${_stem}_corpus PROPERTIES LABELS fuzz TIMEOUT 300)
endfunction()
