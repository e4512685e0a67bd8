# One entry point for a fresh machine. `make test` and `make serve` set up what they need.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
EXTRAS ?= cpu,train,dev

.PHONY: setup system-deps test lint serve train evaluate

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Debian packages the tests and the corpus generator use (espeak-ng speaks the test media;
# chromium loads /docs headless in tests/api/test_docs_browser.py; redis-server is the shared
# store the replica tests start on a private socket, tests/redis_server.py). Chromium and
# redis-server go in without their recommends (systemd, avahi, cups, perl...): about 20 s
# with apt-get update. Nothing is started here: the tests start their own redis-server.
system-deps:
	@speech=; browser=; store=; \
	command -v espeak-ng >/dev/null 2>&1 || speech=1; \
	command -v chromium >/dev/null 2>&1 || browser=1; \
	command -v redis-server >/dev/null 2>&1 || store=1; \
	if [ -n "$$speech$$browser$$store" ]; then apt-get update -qq; fi && \
	if [ -n "$$speech" ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox >/dev/null; fi && \
	if [ -n "$$browser" ]; then DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null; fi && \
	if [ -n "$$store" ]; then DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends redis-server >/dev/null; fi

setup: $(BIN)/python
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"

lint: setup
	$(BIN)/ruff check .

test: system-deps setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# serves the embedded model store on :8000 (python -m app: JSON logs, no access log,
# graceful shutdown); every other setting comes from PHQ_* variables
HOST ?= 0.0.0.0
PORT ?= 8000
serve: EXTRAS = cpu
serve: setup
	PHQ_HOST=$(HOST) PHQ_PORT=$(PORT) $(BIN)/python -m app

# DATA=/path/to/corpus: train on DAIC-WOZ or E-DAIC into the next free fusion version
# (docs/training.md); without DATA, rebuild the shipped synthetic VERSION in place with the
# options its manifest's `command` records, then refit its calibration on the extra people
# it was calibrated on (about 30 minutes on 2 cores for version 5)
VERSION ?= 5
TRAIN_OPTIONS_4 = --max-minutes 40
TRAIN_OPTIONS_5 = --max-minutes 40 --steadiness-centre 0.8 --consensus-scale 4
RECALIBRATE_4 = --extra 1000 --extra-seed 4242
RECALIBRATE_5 = --extra 1000 --extra-seed 4242 9001
train: system-deps setup
ifdef DATA
	$(BIN)/python -m training.train --data $(DATA)
else
	$(BIN)/python -m training.train --version $(VERSION) $(TRAIN_OPTIONS_$(VERSION)) --overwrite
	$(if $(RECALIBRATE_$(VERSION)),$(BIN)/python -m training.recalibrate --model model_store/fusion/$(VERSION) $(RECALIBRATE_$(VERSION)))
endif

evaluate: system-deps setup
	$(BIN)/python -m training.evaluate
