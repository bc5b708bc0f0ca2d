# The dev loop. `make run` and `make test` are the README's two set-up commands.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
ASYNCAPI_TOOL := tools/asyncapi

.PHONY: install run test lint typecheck check bench clean schemas lock mutate

# The worker and, from schemas/, the twap-schemas distribution it depends on, both editable.
$(BIN)/.installed: pyproject.toml schemas/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./schemas -e '.[dev]'
	touch $@

# The reference AsyncAPI parser the contract tests run on docs/asyncapi.json. Without npm the
# install goes on; those tests then skip locally and fail under CI=true.
$(ASYNCAPI_TOOL)/node_modules/.package-lock.json: $(ASYNCAPI_TOOL)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd $(ASYNCAPI_TOOL) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error; \
	else \
	  echo "npm not found: the AsyncAPI parser check cannot run (install Node.js 18+)"; \
	fi

install: $(BIN)/.installed $(ASYNCAPI_TOOL)/node_modules/.package-lock.json

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

mutate: install  ## mutation score of the pure core against tests/unit (tens of minutes, not in CI); MODULES=path ... for some
	$(BIN)/python scripts/mutate.py --show-survivors $(MODULES)

schemas: install  ## regenerate schemas/json/*.json and docs/asyncapi.json from the models
	$(BIN)/python -m twap_schemas.export

# The image's dependencies: every runtime dependency and the build backend, pinned with hashes,
# resolved for Python 3.11 (the image's) on any platform. Pins that still fit are kept;
# `make lock LOCK_FLAGS=--upgrade` moves everything to the newest allowed versions. twap-schemas
# comes from schemas/ ([tool.uv.sources]) and is left out: the image builds it from source.
LOCK_FLAGS ?=
lock: install  ## regenerate requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --group build --universal --python-version 3.11 \
	  --generate-hashes --custom-compile-command "make lock" --quiet $(LOCK_FLAGS) \
	  --no-emit-package twap-schemas --output-file requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache twap.db twap.db-* $(ASYNCAPI_TOOL)/node_modules
