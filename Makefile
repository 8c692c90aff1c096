# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test lint bootstrap compose-validator clean

run: bootstrap
	$(BIN)/python stack.py run

demo: bootstrap
	$(BIN)/python stack.py demo

# With LEDGERFLOW_TEST_POSTGRES_URL (.ci/run sets it), the tests that lean on the database's isolation run
# again on PostgreSQL, each on a fresh database made from the migrated template.
POSTGRES_TESTS := tests/test_db.py tests/test_receivables.py tests/test_crm_records.py \
	tests/test_ledger_activities.py tests/test_payments_e2e.py tests/test_lifecycle_e2e.py tests/test_royalty_e2e.py

test: bootstrap compose-validator
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	@if [ -n "$$LEDGERFLOW_TEST_POSTGRES_URL" ]; then \
		echo "== the database-sensitive tests again, on PostgreSQL"; \
		$(BIN)/python -m pytest -q $(POSTGRES_TESTS); \
	fi

lint: bootstrap
	$(BIN)/ruff check .

bootstrap: $(STAMP)

# Debian's docker-compose validates docker-compose.temporal.yml without a Docker engine.
compose-validator:
	@command -v docker-compose >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }; } || \
		echo "note: install Debian's docker-compose to validate docker-compose.temporal.yml (its test fails without it)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf .data .pytest_cache .ruff_cache
