# wifi-export: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PYTHON  ?= $(shell scripts/find-python)
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install lint typecheck pytest test pr demo bench chaos build deploy invoke logs delete clean lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt layers/requirements.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@touch $(STAMP)

install: $(STAMP) ## create/refresh the virtualenv with the pinned dependencies

lint: $(STAMP) ## ruff (lint + format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(VENV)/bin/mypy

pytest: $(STAMP) ## the test suite (unit, integration, template, package)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest ## everything CI runs: lint, types, tests

pr: test ## alias kept for muscle memory: what a pull request must pass

demo: $(STAMP) ## run the exporter end to end on moto + the local fake API
	$(PY) -m local.demo

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

lock: $(STAMP) ## regenerate constraints.txt from the current virtualenv
	( echo '# Full pin set of the dev virtualenv (pip freeze); `make lock` regenerates it.'; $(PY) -m pip freeze ) > constraints.txt
