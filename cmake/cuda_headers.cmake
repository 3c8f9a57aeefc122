# Where the CUDA headers lina compiles against come from: cuda.h (driver API) and nvrtc.h. Both
# libraries are loaded with dlopen at run time, so the build needs only these headers:
#  1. LINA_CUDA_INCLUDE_DIRS, if the user sets it;
#  2. a CUDA toolkit (find_package(CUDAToolkit));
#  3. PyPI's nvidia-cuda-runtime and nvidia-cuda-nvrtc wheels (CUDA 12: nvidia/cuda_runtime/include
#     and nvidia/cuda_nvrtc/include; CUDA 13: nvidia/cu13/include), found through the Python that
#     builds lina (pyproject.toml lists them as build requirements), so `pip install .` needs no
#     toolkit.
# Sets LINA_CUDA_INCLUDE_DIRS and LINA_CUDA_LIBRARY_DIR (the toolkit's lib folder, or empty).
set(LINA_CUDA_INCLUDE_DIRS "" CACHE STRING "Folders with cuda.h and nvrtc.h (empty: toolkit, then pip wheels)")
set(LINA_CUDA_LIBRARY_DIR "")
if(NOT LINA_CUDA_INCLUDE_DIRS)
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    set(LINA_CUDA_INCLUDE_DIRS ${CUDAToolkit_INCLUDE_DIRS})
    set(LINA_CUDA_LIBRARY_DIR ${CUDAToolkit_LIBRARY_DIR})
    message(STATUS "CUDA headers: the toolkit's (${CUDAToolkit_INCLUDE_DIRS})")
  else()
    # The Python that builds lina (scikit-build-core and the presets pass Python_EXECUTABLE).
    set(_lina_python "${Python_EXECUTABLE}")
    if(NOT _lina_python)
      find_package(Python3 COMPONENTS Interpreter QUIET)
      set(_lina_python "${Python3_EXECUTABLE}")
    endif()
    if(_lina_python)
      execute_process(
        COMMAND ${_lina_python} -c [=[
import importlib.util, os
dirs = []
for name in ("nvidia.cuda_runtime", "nvidia.cuda_nvrtc", "nvidia.cu13", "nvidia.cu12"):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    for root in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isdir(os.path.join(root, "include")):
            dirs.append(os.path.join(root, "include"))
print(";".join(dirs), end="")
]=]
        OUTPUT_VARIABLE _lina_pip_cuda_dirs RESULT_VARIABLE _lina_pip_rc ERROR_QUIET)
      set(LINA_CUDA_INCLUDE_DIRS ${_lina_pip_cuda_dirs})
    endif()
    if(LINA_CUDA_INCLUDE_DIRS)
      message(STATUS "CUDA headers: from Python packages (${LINA_CUDA_INCLUDE_DIRS})")
    endif()
  endif()
endif()
find_path(LINA_CUDA_H cuda.h PATHS ${LINA_CUDA_INCLUDE_DIRS} NO_DEFAULT_PATH)
find_path(LINA_NVRTC_H nvrtc.h PATHS ${LINA_CUDA_INCLUDE_DIRS} NO_DEFAULT_PATH)
if(NOT LINA_CUDA_H OR NOT LINA_NVRTC_H)
  message(FATAL_ERROR "lina needs cuda.h and nvrtc.h to build (no GPU or CUDA library is needed): found cuda.h in "
                      "'${LINA_CUDA_H}', nvrtc.h in '${LINA_NVRTC_H}' (searched: '${LINA_CUDA_INCLUDE_DIRS}'). "
                      "Install the CUDA toolkit, or `pip install nvidia-cuda-runtime-cu12 nvidia-cuda-nvrtc-cu12` for "
                      "the Python that runs CMake, or pass -DLINA_CUDA_INCLUDE_DIRS=<folders with cuda.h and nvrtc.h>.")
endif()
