# The dev loop. `make run` and `make test` are the README's two set-up commands.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test lint typecheck check bench clean schemas mutate

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: install  ## the worker on its embedded default: SQLite file, sim broker, local RabbitMQ
	$(BIN)/twap migrate
	exec $(BIN)/twap worker

test: install  ## the whole suite against the local RabbitMQ and PostgreSQL
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check worker schemas tests bench
	$(BIN)/ruff format --check worker schemas tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: install  ## every benchmark, quick mode
	$(BIN)/python -m bench all --quick

mutate: install  ## mutation score of the pure core against tests/unit (~15 min, not in CI); MODULES=path ... for some
	$(BIN)/python scripts/mutate.py --show-survivors $(MODULES)

schemas: install  ## regenerate schemas/json/*.json and docs/asyncapi.json from the models
	$(BIN)/python -m schemas.export

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache twap.db twap.db-*
