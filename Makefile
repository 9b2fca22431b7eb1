# Everything a fresh machine needs: `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB ?= demo.db
AR := $(BIN)/artreturns --db $(DEMO_DB)

.PHONY: install chromium demo test test-slow lint format bench docs clean

$(BIN)/artreturns: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/artreturns

# The tour on a fresh SQLite file: the procedure deployed, a catalogue of orders imported,
# seven returns down seven paths (docs/demo/run.sh), then where each one stands.
demo: install
	rm -rf $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(basename $(DEMO_DB))-data
	ARTRETURNS_DB=$(DEMO_DB) PATH="$(abspath $(BIN)):$$PATH" bash docs/demo/run.sh

# The audit report's test opens the page in headless Chromium: installed here when it is
# missing and we may (root, apt-get); elsewhere a note, and that test skips (fails in CI).
chromium:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing chromium (headless browser for the audit report's test)"; \
	  apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "note: chromium is not installed and cannot be here (not root, or no apt-get):"; \
	  echo "      the audit report's browser test will skip (and fail in CI)"; fi

test: install chromium
	$(BIN)/python -m pytest -q -m "not slow"

# The long runs (soak, fault injection) that CI runs as a step of their own.
# pytest exits 5 when no test carries the marker yet; that is not a failure.
test-slow: install
	$(BIN)/python -m pytest -q -m slow || [ $$? -eq 5 ]

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/artreturns bench

# The CLI reference, the handler catalogue, the diagram pictures and the operating manual
# (docs/manual/) are generated; tests/cli/test_docs.py and test_manual.py check they are
# up to date.
docs: install
	$(BIN)/python docs/render_cli.py cli > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md
	$(BIN)/python docs/render_cli.py handlers > docs/handlers.md.tmp && mv docs/handlers.md.tmp docs/handlers.md
	$(BIN)/python docs/render_diagrams.py
	$(BIN)/artreturns docs --out docs/manual processes

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(basename $(DEMO_DB))-data .pytest_cache .mypy_cache .ruff_cache
