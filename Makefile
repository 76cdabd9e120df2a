# The two commands of the README: `make run` (the main job) and `make test` (the test suite).
# Both set up everything first, on a fresh machine too: a virtualenv with the package and its
# test tools, and Apache Kafka's jars resolved from Maven Central.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml deploy/local/pom.xml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,text]'
	$(BIN)/modyn-stream kafka provision
	touch $@

run: setup
	$(BIN)/modyn-stream run examples/digits_data_amount.yaml --fresh

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
