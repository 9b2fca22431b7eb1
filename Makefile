# Everything a fresh machine needs: `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB ?= demo.db
AR := $(BIN)/artreturns --db $(DEMO_DB)

.PHONY: install demo test test-slow lint format bench docs clean

$(BIN)/artreturns: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/artreturns

# A small end-to-end sample on a fresh SQLite file: three requests take three paths
# (decided in time, incomplete, escalated after the two-day deadline).
demo: install
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(AR) init
	$(AR) --as owner deploy processes/
	$(AR) --as alice --now 2026-11-02T09:00:00Z start return_request --key DEMO-1
	$(AR) --as alice --now 2026-11-02T09:10:00Z complete DEMO-1:register \
	  --set order_number=A-1001 --set artwork=W-17 --set type=return --set reason=defective \
	  --set description="Crack in the glaze"
	$(AR) --as bob --now 2026-11-02T15:00:00Z complete DEMO-1:review \
	  --set approved=true --set note="Photos confirm the crack"
	$(AR) --as alice --now 2026-11-02T10:00:00Z start return_request --key DEMO-2
	$(AR) --as alice --now 2026-11-02T10:05:00Z complete DEMO-2:register \
	  --set order_number=A-1002 --set type=exchange --set reason=not_as_described
	$(AR) --as alice --now 2026-11-02T11:00:00Z start return_request --key DEMO-3
	$(AR) --as alice --now 2026-11-02T11:05:00Z complete DEMO-3:register \
	  --set order_number=A-1003 --set artwork=W-42 --set type=return --set reason=transit_damage
	$(AR) --as scheduler --now 2026-11-05T09:00:00Z run-due
	$(AR) --now 2026-11-05T09:00:00Z instances
	$(AR) --now 2026-11-05T09:00:00Z tasks
	$(AR) history DEMO-1
	$(AR) verify DEMO-1

test: install
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

# The CLI reference and the handler catalogue are generated; tests/cli/test_docs.py checks them.
docs: install
	$(BIN)/python docs/render_cli.py cli > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md
	$(BIN)/python docs/render_cli.py handlers > docs/handlers.md.tmp && mv docs/handlers.md.tmp docs/handlers.md

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm .pytest_cache .mypy_cache .ruff_cache
