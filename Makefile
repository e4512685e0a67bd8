# One entry point for a fresh machine. `make test` and `make serve` set up what they need.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
EXTRAS ?= cpu,train,dev

.PHONY: setup system-deps test lint train evaluate

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Debian packages the tests and the corpus generator use (espeak-ng speaks the test media)
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null; }

setup: $(BIN)/python system-deps
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"

lint: setup
	$(BIN)/ruff check .

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

train: setup
	$(BIN)/python -m training.train --version 1

evaluate: setup
	$(BIN)/python -m training.evaluate --model model_store/fusion/1
