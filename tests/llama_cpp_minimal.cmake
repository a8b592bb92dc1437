# Read by the llama-cpp-python build after each project() call (CMAKE_PROJECT_INCLUDE in the Makefile's
# LLAMA_CMAKE_ARGS). llama-cpp-python forces llama.cpp's `common` library on (a FORCE'd cache entry, so
# -DLLAMA_BUILD_COMMON=OFF cannot reach it), and its Python bindings never load it: they load libllama and
# ggml (mtmd, turned off by -DLLAVA_BUILD=OFF beside this, only for image chat, which the harness does
# not use). A normal variable shadows the cache entry (policies CMP0077 and CMP0126, both NEW here), so
# `common`, its vendored HTTP library and the multimodal tools are not compiled: about 40 % of the build.
set(LLAMA_BUILD_COMMON OFF)
