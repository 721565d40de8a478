# `make run` and `make test` are all a fresh machine needs; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install-stamp
# Where `make run` (and `make dev`) serve, e.g. `make run PORT=8611`; another HOST than 127.0.0.1
# needs sign-in (README). Media URLs follow the address and port the app really listens on.
HOST ?= 127.0.0.1
PORT ?= 8501

.PHONY: install browser postgres run dev worker scaled test lint typecheck screenshots clean

install: $(STAMP)

# Reinstalls only when a requirements file changes, so a second `make install` is instant.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: install
	$(BIN)/python -m mediagen db upgrade
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

# For developing the studio: reruns pages when their code is saved and shows Streamlit's
# developer menu. `make run` is for users (no file watcher, no Deploy button).
dev: install
	$(BIN)/python -m mediagen db upgrade
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--server.fileWatcherType auto --server.runOnSave true --client.toolbarMode developer

worker: install
	$(BIN)/python -m mediagen worker

# The studio scaled out, on one machine, to try it: a throwaway PostgreSQL, two workers and the app
# (MEDIAGEN_WORKER_IN_APP=false) at HOST:PORT; Ctrl+C stops them all and removes the trial's data.
scaled: install postgres
	$(BIN)/python -m mediagen.scaled --host $(HOST) --port $(PORT)

# Browser tests drive Debian's Chromium (Playwright's own browser downloads are not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# The database tests run on SQLite and on a throwaway PostgreSQL cluster the tests start themselves
# (as the postgres user when run as root); they need Debian's server binaries, and PgBouncer for
# the test that runs the studio through it in transaction mode.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl /usr/sbin/pgbouncer >/dev/null 2>&1 || { \
		echo "installing Debian's postgresql and pgbouncer for the database tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql pgbouncer >/dev/null; }

# Two test processes (each with its own PostgreSQL cluster and free ports): much of the suite waits on
# servers, workers and browsers, so on 2 cores it takes about half the time of one.
TEST_PROCESSES ?= 2

test: lint typecheck browser postgres
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile

screenshots: install browser
	MEDIAGEN_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/ui/test_browser.py tests/ui/test_browser_compare.py tests/ui/test_browser_lineage.py -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
