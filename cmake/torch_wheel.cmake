# Building against libtorch from a PyPI torch wheel (site-packages/torch) on a machine that also
# has Debian's libtorch-dev. Three finds would otherwise land in /usr and mix two libtorch builds:
#  1. TorchConfig.cmake's find_dependency(Caffe2) finds Debian's CPU-only Caffe2Config.cmake;
#  2. find_library finds Debian's libtorch.so / libc10.so before the wheel's;
#  3. the link resolves libnccl.so.2 from the CUDA toolkit, older than the wheel's nvidia/nccl that
#     libtorch_cuda needs, and mergesweep's own NCCL backend would load a second NCCL.
# And one thing at run time: the wheel's libtorch.so and libtorch_cpu.so export std::filesystem
# (a static copy from the GCC the wheel was built with). Listed before libstdc++.so.6, they
# interpose the system's, and our own std::filesystem calls land in torch's copy: remove_all
# jumped to address 0 (torch 2.11.0, Debian 12's GCC 12). libstdc++ is made the first DT_NEEDED.
# When Torch_DIR points into a wheel (a sibling "nvidia" folder next to "torch"), this pins all
# three to the wheel. A Debian build (no Torch_DIR) is untouched.
macro(ms_prefer_torch_wheel)
  if(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
    get_filename_component(_ms_torch_prefix "${Torch_DIR}/../../.." ABSOLUTE)  # .../site-packages/torch
    get_filename_component(_ms_site "${_ms_torch_prefix}/.." ABSOLUTE)
    if(EXISTS "${_ms_torch_prefix}/lib/libtorch.so" AND EXISTS "${_ms_site}/nvidia")
      message(STATUS "mergesweep: libtorch from the wheel at ${_ms_torch_prefix}")
      set(Caffe2_DIR "${_ms_torch_prefix}/share/cmake/Caffe2" CACHE PATH "the wheel's Caffe2 config" FORCE)
      set(TORCH_LIBRARY "${_ms_torch_prefix}/lib/libtorch.so" CACHE FILEPATH "the wheel's libtorch" FORCE)
      set(c10_LIBRARY "${_ms_torch_prefix}/lib/libc10.so" CACHE FILEPATH "the wheel's libc10" FORCE)
      if(EXISTS "${_ms_site}/nvidia/nccl/include/nccl.h" AND NOT MS_NCCL_ROOT)
        set(MS_NCCL_ROOT "${_ms_site}/nvidia/nccl" CACHE PATH "NCCL to build the NCCL backend against" FORCE)
      endif()
      # libstdc++ ahead of libtorch (std::filesystem, above): link options precede the libraries.
      add_link_options("SHELL:-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")
      # Link-time lookup of libtorch_cuda's own dependencies (libnccl.so.2, cuBLAS, ...) in the
      # wheel's nvidia/*/lib (run time finds them through libtorch's own RPATH).
      file(GLOB _ms_nvidia_libs LIST_DIRECTORIES true "${_ms_site}/nvidia/*/lib" "${_ms_site}/nvidia/cu*/lib")
      foreach(_d IN LISTS _ms_nvidia_libs)
        if(IS_DIRECTORY "${_d}")
          add_link_options("LINKER:-rpath-link,${_d}")
        endif()
      endforeach()
    endif()
  endif()
endmacro()
