# Two commands for a fresh machine: `make run` and `make test`. Everything else is set-up they share.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JARS   := .cache/jars/.fetched
SCALE  ?= 0.05
SEED   ?= 1
RAW    ?= data/raw
OUT    ?= data/out

.PHONY: setup browser run test lint format generate clean

setup: $(STAMP) $(JARS)

# One pip command with every pin, so pip resolves delta-spark and pyspark together.
$(STAMP): requirements.lock requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock -r requirements.txt -e .
	touch $(STAMP)

# Resolve the Delta jars from Maven Central once; sessions then load them from disk.
$(JARS): $(STAMP) conf/base.yaml ld_spark/config.py
	$(PY) -m ld_spark.setup_jars
	touch $(JARS)

generate: setup
	$(VENV)/bin/ld-spark generate --scale $(SCALE) --seed $(SEED) --out $(RAW)

run: generate
	$(VENV)/bin/ld-spark run --raw $(RAW) --out $(OUT)

# The report test renders results/report.html in Debian's headless Chromium.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

test: setup browser
	$(VENV)/bin/pytest -q

# What .ci/run checks before the tests (ruff settings in pyproject.toml); `make format` fixes it.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf data mlflow.db mlruns spark-warehouse
