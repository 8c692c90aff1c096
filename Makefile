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

# The suite on SQLite (the default backend), then, with LEDGERFLOW_TEST_POSTGRES_URL (.ci/run sets it), every
# test that runs on the database again on PostgreSQL (marked `database` by tests/conftest.py), each on a fresh
# database made from the migrated template. PYTEST_WORKERS processes share each run (pytest-xdist): the tests
# spend most of their time waiting on servers, so more workers than cores still helps.
PYTEST_WORKERS ?= 3

test: bootstrap compose-validator
	$(BIN)/ruff check .
	env -u LEDGERFLOW_TEST_POSTGRES_URL $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	@if [ -n "$$LEDGERFLOW_TEST_POSTGRES_URL" ]; then \
		echo "== every test on the database again, on PostgreSQL"; \
		$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) -m database $(PYTEST_ARGS); \
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
