# Locates LibTorch and defines the imported target `peft::torch`.
#
# Where it looks, in order:
#   1. -DPEFT_TORCH_ROOT=<dir> (a folder with include/torch and lib/libtorch.so)
#   2. any CMAKE_PREFIX_PATH entry that is (or is inside) such a folder, e.g. an unzipped LibTorch
#      or a CUDA host's site-packages/torch
#   3. the torch package of -DPEFT_PYTHON (the project venv made by scripts/setup.sh)
#
# We do not call find_package(Torch): the config shipped in CUDA wheels insists on a local CUDA
# toolkit even for CPU-only use. Linking the libraries directly works for CPU and CUDA builds alike.

function(_peft_is_torch_root dir out)
  if(EXISTS "${dir}/include/torch/csrc/api/include/torch/torch.h" AND EXISTS "${dir}/lib")
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

if(NOT PEFT_TORCH_ROOT)
  foreach(p IN LISTS CMAKE_PREFIX_PATH)
    foreach(candidate "${p}" "${p}/../../.." "${p}/torch")
      get_filename_component(candidate "${candidate}" ABSOLUTE)
      _peft_is_torch_root("${candidate}" ok)
      if(ok)
        set(PEFT_TORCH_ROOT "${candidate}")
        break()
      endif()
    endforeach()
    if(PEFT_TORCH_ROOT)
      break()
    endif()
  endforeach()
endif()

if(NOT PEFT_TORCH_ROOT AND PEFT_PYTHON)
  execute_process(
    COMMAND "${PEFT_PYTHON}" -c "import os, torch; print(os.path.dirname(torch.__file__))"
    OUTPUT_VARIABLE _torch_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc ERROR_QUIET)
  if(_rc EQUAL 0)
    set(PEFT_TORCH_ROOT "${_torch_dir}")
  endif()
endif()

if(NOT PEFT_TORCH_ROOT)
  message(FATAL_ERROR "LibTorch not found: run scripts/setup.sh, or pass -DPEFT_TORCH_ROOT=<libtorch dir> "
                      "or -DCMAKE_PREFIX_PATH=<libtorch dir>")
endif()
_peft_is_torch_root("${PEFT_TORCH_ROOT}" ok)
if(NOT ok)
  message(FATAL_ERROR "PEFT_TORCH_ROOT=${PEFT_TORCH_ROOT} has no include/torch or lib/: not a LibTorch folder")
endif()
set(PEFT_TORCH_ROOT "${PEFT_TORCH_ROOT}" CACHE PATH "LibTorch folder" FORCE)

set(_lib "${PEFT_TORCH_ROOT}/lib")
# Only the CPU part is linked. libtorch.so would pull in libtorch_cuda.so, and with it cuBLAS, cuDNN
# and NCCL (hundreds of MB mapped by every run, `peft --help` included): peft::load_cuda() dlopens it
# when a CUDA device is asked for (src/util/runtime.cpp).
set(_libs "${_lib}/libtorch_cpu.so" "${_lib}/libc10.so")
set(PEFT_TORCH_HAS_CUDA OFF)
set(PEFT_TORCH_CUDA_LIBRARY "")
if(EXISTS "${_lib}/libtorch_cuda.so")
  set(PEFT_TORCH_HAS_CUDA ON)
  set(PEFT_TORCH_CUDA_LIBRARY "${_lib}/libtorch_cuda.so")
endif()

# The C++ ABI LibTorch was built with must match ours: read it off libc10's symbols.
execute_process(COMMAND sh -c "nm -D --defined-only '${_lib}/libc10.so' | grep -c __cxx11"
                OUTPUT_VARIABLE _cxx11_count OUTPUT_STRIP_TRAILING_WHITESPACE)
if(_cxx11_count GREATER 0)
  set(_abi 1)
else()
  set(_abi 0)
endif()

add_library(peft_torch INTERFACE)
add_library(peft::torch ALIAS peft_torch)
target_include_directories(peft_torch SYSTEM INTERFACE
  "${PEFT_TORCH_ROOT}/include" "${PEFT_TORCH_ROOT}/include/torch/csrc/api/include")
target_compile_definitions(peft_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${_abi})
target_link_libraries(peft_torch INTERFACE ${_libs} ${CMAKE_DL_LIBS})
target_link_options(peft_torch INTERFACE "-Wl,-rpath,${_lib}")
message(STATUS "LibTorch: ${PEFT_TORCH_ROOT} (cxx11 abi ${_abi}, cuda ${PEFT_TORCH_HAS_CUDA})")
