# `make demo` and `make test` set up .venv on a machine with only Python 3.11, pip, make and apt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install clean

install: $(STAMP)

# The CPU build of torch is installed first, on its own: installing the package first would let
# pip resolve `torch` to a multi-GB CUDA build.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e ".[test,images,plots]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/viewsplit demo

test: $(STAMP)
	$(BIN)/ruff check viewsplit tests benchmarks
	$(BIN)/mypy viewsplit
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
