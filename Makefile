# `make run` and `make test` are all a fresh machine needs; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: install run worker test lint typecheck clean

install: $(STAMP)

# Reinstalls only when a requirements file changes, so a second `make install` is instant.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: install
	$(BIN)/python -m mediagen db upgrade
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

worker: install
	$(BIN)/python -m mediagen worker

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
