# omnireid — set-up and the two everyday commands.
# `make demo` and `make test` create the environment themselves when it is missing.

PYTHON ?= python3
VENV ?= .venv
# torch/torchvision are installed first, pinned to the releases this project is tested with;
# override TORCH_SPEC to use another build (the ranges in pyproject.toml still apply).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.omnireid-installed

.PHONY: venv demo test test-fast lint typecheck clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev,reference,deploy,serve]'
	@touch $(STAMP)

demo: venv
	$(BIN)/omnireid demo

# ruff, the import layers and mypy on the package ([tool.mypy] in pyproject.toml)
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# mypy alone (part of lint)
typecheck: venv
	$(BIN)/mypy

test: venv lint
	$(BIN)/python -m pytest -q

# the tests without the `slow` marker (tests/conftest.py registers it): minutes, not the hour
test-fast: venv lint
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
