# Two commands matter: `make run` and `make test`. Both build the venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv run test lint unit test-fast bench clean

venv: $(STAMP)

# Re-install only when the project's declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/m365vault demo

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# `make test` starts what the tests need (PostgreSQL if it is down; SeaweedFS is started by the
# test session itself) and runs the whole suite. pytest's exit code 5 (no tests) is a failure.
# --dist loadfile: a module's tests stay on one worker, in order (the e2e modules build on each
# other's backups over one emulator and server).
test: venv lint
	bash .ci/services
	$(BIN)/pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/pytest -x -q $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
