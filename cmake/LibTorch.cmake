# Defines the target dinov3::torch: the LibTorch shipped inside the pinned torch wheel of .venv/,
# so the C++ server and the Python exporter always use one torch version.
#
# DINOV3_TORCH_CUDA (AUTO|ON|OFF):
#   ON   the wheel's full CMake config (find_package(Torch)), CUDA included; needs the CUDA
#        toolkit (nvcc) at build time. Binaries run on CPU-only machines too.
#   OFF  links only libtorch_cpu and libc10 from the wheel: no CUDA toolkit needed, CPU only.
#   AUTO ON when nvcc is found, else OFF.
set(DINOV3_TORCH_CUDA AUTO CACHE STRING "Link LibTorch with CUDA: AUTO, ON or OFF")
set_property(CACHE DINOV3_TORCH_CUDA PROPERTY STRINGS AUTO ON OFF)

execute_process(
  COMMAND "${DINOV3_PYTHON}" -c "import os, torch; print(os.path.dirname(torch.__file__))"
  OUTPUT_VARIABLE DINOV3_TORCH_DIR OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _torch_rc)
if(NOT _torch_rc EQUAL 0 OR NOT EXISTS "${DINOV3_TORCH_DIR}/lib")
  message(FATAL_ERROR "torch not importable with ${DINOV3_PYTHON}; run scripts/setup.sh first")
endif()

set(_use_cuda ${DINOV3_TORCH_CUDA})
if(_use_cuda STREQUAL "AUTO")
  find_program(DINOV3_NVCC nvcc HINTS /usr/local/cuda/bin)
  if(DINOV3_NVCC)
    set(_use_cuda ON)
  else()
    set(_use_cuda OFF)
  endif()
endif()

# The wheel's include/ also bundles protobuf, fmt and pybind11 headers of other versions; on the
# include path they would shadow Debian's (which gRPC and spdlog need). Expose a copy of the
# folder, made of links, without them.
set(DINOV3_TORCH_INCLUDE "${CMAKE_BINARY_DIR}/torch-include")
file(MAKE_DIRECTORY "${DINOV3_TORCH_INCLUDE}")
file(GLOB _torch_entries RELATIVE "${DINOV3_TORCH_DIR}/include" "${DINOV3_TORCH_DIR}/include/*")
foreach(_entry ${_torch_entries})
  if(NOT _entry MATCHES "^(google|fmt|pybind11)$" AND NOT EXISTS "${DINOV3_TORCH_INCLUDE}/${_entry}")
    file(CREATE_LINK "${DINOV3_TORCH_DIR}/include/${_entry}" "${DINOV3_TORCH_INCLUDE}/${_entry}"
         SYMBOLIC)
  endif()
endforeach()

# Points the include directories of the wheel's imported targets at DINOV3_TORCH_INCLUDE.
function(dinov3_filter_torch_includes)
  foreach(_target headeronly c10 c10_cuda torch_cpu torch_cuda torch)
    if(NOT TARGET ${_target})
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    list(TRANSFORM _dirs REPLACE "^.*/torch/include(/|$)" "${DINOV3_TORCH_INCLUDE}\\1")
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
  endforeach()
endfunction()

add_library(dinov3_torch INTERFACE)
add_library(dinov3::torch ALIAS dinov3_torch)
if(_use_cuda)
  if(NOT CMAKE_CUDA_COMPILER AND DINOV3_NVCC)
    set(CMAKE_CUDA_COMPILER "${DINOV3_NVCC}")
  endif()
  # Name the architectures so Caffe2's config does not try to detect (absent) GPUs; its probe
  # program fails to configure under this project's C++20 setting. Hopper and Ampere by default.
  if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
    set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${DINOV3_TORCH_DIR}/share/cmake")
  find_package(Torch REQUIRED)
  dinov3_filter_torch_includes()
  target_link_libraries(dinov3_torch INTERFACE ${TORCH_LIBRARIES})
  message(STATUS "LibTorch: ${DINOV3_TORCH_DIR} (CUDA ${CUDA_VERSION})")
else()
  target_include_directories(dinov3_torch SYSTEM INTERFACE
    "${DINOV3_TORCH_INCLUDE}" "${DINOV3_TORCH_INCLUDE}/torch/csrc/api/include")
  target_link_libraries(dinov3_torch INTERFACE
    "${DINOV3_TORCH_DIR}/lib/libtorch_cpu.so" "${DINOV3_TORCH_DIR}/lib/libc10.so")
  target_compile_definitions(dinov3_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
  message(STATUS "LibTorch: ${DINOV3_TORCH_DIR} (CPU only)")
endif()
set(DINOV3_TORCH_CUDA_ENABLED ${_use_cuda})
