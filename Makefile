# wifi-export: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PYTHON  ?= $(shell scripts/find-python)
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install lint typecheck pytest test pr demo bench chaos build deploy invoke logs delete clean lock sam-venv sam-lock validate clean-sam

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

pytest: $(STAMP) ## the test suite (unit, integration, chaos at CI size, template, package, bench smoke)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest ## everything CI runs: lint, types, tests

pr: test ## alias kept for muscle memory: what a pull request must pass

demo: $(STAMP) ## run the exporter end to end on moto + the local fake API
	$(PY) -m local.demo

BENCH_ARGS ?=
bench: $(STAMP) ## benchmark vs baselines: bench/results/latest.json + docs/performance.md
	$(PY) bench/run.py $(BENCH_ARGS)

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

lock: $(STAMP) ## regenerate constraints.txt from the current virtualenv
	( echo '# Full pin set of the dev virtualenv (pip freeze); `make lock` regenerates it.'; $(PY) -m pip freeze ) > constraints.txt

# --- AWS SAM: validate, build, deploy, invoke, logs, delete ------------------------
# The SAM CLI lives in its own virtualenv: its pins (boto3, cfn-lint, ...) conflict
# with the dev set and it is large. requirements-sam.txt is its full pin set.
SAM_VENV        ?= .venv-sam
SAM_STAMP       := $(SAM_VENV)/.installed
SAM_CLI_VERSION ?= 1.170.0
# The stack samconfig.toml names (after `make deploy`), else wifi-export.
STACK_NAME      ?= $(or $(shell sed -n 's/^ *stack_name *= *"\([^"]*\)".*/\1/p' samconfig.toml 2>/dev/null | head -n1),wifi-export)
# `sam build` looks for the runtime's interpreter (python3.12) on PATH, and pyenv
# keeps it off PATH: prepend the directory of the interpreter find-python chose.
# Telemetry off for every sam call (CI and developers alike).
SAM             = PATH="$(dir $(PYTHON)):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
BRAND           ?=
START           ?=
END             ?=

$(SAM_STAMP): requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-sam.txt
	@touch $(SAM_STAMP)

sam-venv: $(SAM_STAMP) ## the AWS SAM CLI in its own virtualenv (.venv-sam)

sam-lock: ## regenerate requirements-sam.txt for SAM_CLI_VERSION
	rm -rf $(SAM_VENV)-lock && $(PYTHON) -m venv $(SAM_VENV)-lock
	$(SAM_VENV)-lock/bin/python -m pip install -q --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	( sed -n '/^#/p' requirements-sam.txt; $(SAM_VENV)-lock/bin/python -m pip freeze ) > requirements-sam.txt.new
	mv requirements-sam.txt.new requirements-sam.txt && rm -rf $(SAM_VENV)-lock

validate: $(SAM_STAMP) ## sam validate --lint (template.yaml, with cfn-lint)
	$(SAM) validate --lint

build: $(SAM_STAMP) ## sam build: function + dependencies layer into .aws-sam/build
	$(SAM) build --cached

deploy: build ## sam deploy (guided the first time; that writes samconfig.toml)
	@if [ -f samconfig.toml ]; then \
	  $(SAM) deploy; \
	else \
	  $(SAM) deploy --guided --stack-name $(STACK_NAME) --capabilities CAPABILITY_IAM; \
	fi

invoke: $(STAMP) ## on-demand export on the deployed stack: make invoke BRAND=1234 START=2023-06-08 END=2023-06-30
	@test -n "$(BRAND)" -a -n "$(START)" -a -n "$(END)" || \
	  { echo "usage: make invoke BRAND=<id> START=YYYY-MM-DD END=YYYY-MM-DD [STACK_NAME=$(STACK_NAME)]" >&2; exit 2; }
	$(PY) scripts/invoke.py --stack-name $(STACK_NAME) --brand $(BRAND) --start $(START) --end $(END)

logs: $(SAM_STAMP) ## tail the exporter's logs of the deployed stack
	$(SAM) logs --stack-name $(STACK_NAME) --name ExporterFunction --tail

delete: $(SAM_STAMP) ## delete the stack (the export bucket and its data are retained)
	$(SAM) delete --stack-name $(STACK_NAME)

clean-sam: ## remove the SAM virtualenv and build output
	rm -rf $(SAM_VENV) .aws-sam

# --- the fault and bad-input campaign (docs/reliability.md) --------------------------
# `make test` runs it at CI size (tests/chaos); this runs it larger and rewrites the
# table in docs/reliability.md. CHAOS_SIZE=ci gives the quick version of the same table.
CHAOS_SIZE ?= full

chaos: $(STAMP) ## fault and bad-input campaign at full size; writes docs/reliability.md
	CHAOS_SIZE=$(CHAOS_SIZE) CHAOS_REPORT=docs/reliability.md $(VENV)/bin/pytest tests/chaos -q $(PYTEST_ARGS)
