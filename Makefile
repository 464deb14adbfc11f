# wifi-export: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PYTHON  ?= $(shell scripts/find-python)
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=
# Test files run side by side on this many workers (pytest-xdist; a file's tests stay
# on one worker, they share its module fixtures). 0 runs them in this process.
PYTEST_WORKERS ?= 2

.PHONY: help install lint typecheck pytest test pr demo sandbox stress bench bench-scale chaos build deploy invoke logs delete clean lock sam-venv sam-lock validate clean-sam
.PHONY: layer-lock scan checkov-venv checkov-lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# pip itself is pinned too (every virtualenv of the project is built with this pip).
PIP_VERSION ?= 26.3

# The runtime set comes from the layer's hashed lock in a pip call of its own: a
# single hash anywhere turns on pip's hash-checking mode for the whole call, and
# in that mode every requirement must carry hashes, which the dev set does not.
$(STAMP): requirements-dev.txt layers/requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r layers/requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	# The project itself (the `wifi-export` CLI), editable, on the pins above.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## create/refresh the virtualenv with the pinned dependencies

lint: $(STAMP) ## ruff (lint + format check)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy
	$(VENV)/bin/mypy

pytest: $(STAMP) ## the test suite (unit, integration, chaos at CI size, template, package, bench smoke)
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck scan pytest ## everything CI runs: lint, types, the IaC scanner, tests

pr: test ## alias kept for muscle memory: what a pull request must pass

demo: $(STAMP) ## run the exporter end to end on moto + the local fake API
	$(PY) -m local.demo

sandbox: $(STAMP) ## the local stack up until Ctrl-C, for the CLI in another shell (writes .sandbox.env)
	$(PY) -m local.sandbox

# The whole suite STRESS_RUNS times in a row with every core busy (CPU hogs), no
# retry: a test that only passes on an idle machine fails here. About an hour on 2 cores.
STRESS_RUNS ?= 3
stress: $(STAMP) ## the suite 3 times in a row under a CPU hog on every core (flakiness hunt)
	$(PY) scripts/stress.py --runs $(STRESS_RUNS) --log stress.log -- $(PYTEST_ARGS)

BENCH_ARGS ?=
bench: $(STAMP) ## benchmark vs baselines: bench/results/latest.json + docs/performance.md
	$(PY) bench/run.py $(BENCH_ARGS)

# Not part of `make test` (about an hour and a half on 2 cores; a smoke run of it is):
# N poller processes drain the queue at once, a year's backfill and a 200-brand night.
SCALE_ARGS ?=
bench-scale: $(STAMP) ## scale benchmark: pollers 1-16, rate limit, strict 1-s limiter, a brand-year's start and commit; scale section of docs/performance.md
	$(PY) -m bench.scale $(SCALE_ARGS)
	$(PY) -m bench.scale_year $(YEAR_ARGS)

clean: ## remove the virtualenv and build output
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

lock: $(STAMP) ## regenerate constraints.txt from the current virtualenv
	( echo '# Full pin set of the dev virtualenv (pip freeze); `make lock` regenerates it.'; $(PY) -m pip freeze --exclude-editable ) > constraints.txt

# The Lambda layer's lock: layers/requirements.in (the direct requirements, edited
# by hand) compiled by pip-tools into layers/requirements.txt, the full set with the
# hashes of every file PyPI has for each pinned version; pins already in the lock
# are kept (LAYER_LOCK_ARGS=--upgrade moves them). The machine's pip configuration
# (local indexes, find-links) is ignored: only PyPI's files are hashed.
# Then `make install lock` so that constraints.txt agrees (tests/template checks).
PIP_TOOLS_VERSION ?= 7.6.2
LAYER_LOCK_ARGS   ?=

layer-lock: ## regenerate layers/requirements.txt (full set, hashed) from layers/requirements.in
	rm -rf $(VENV)-layer-lock && $(PYTHON) -m venv $(VENV)-layer-lock
	$(VENV)-layer-lock/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION)
	cp layers/requirements.txt layers/requirements.lock.tmp
	cd layers && env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	  ../$(VENV)-layer-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	    --no-header --no-emit-index-url --no-emit-find-links $(LAYER_LOCK_ARGS) \
	    --output-file requirements.lock.tmp requirements.in
	( sed -n '/^#/p' layers/requirements.txt; cat layers/requirements.lock.tmp ) > layers/requirements.txt.new
	mv layers/requirements.txt.new layers/requirements.txt
	rm -rf layers/requirements.lock.tmp $(VENV)-layer-lock

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
EVENT           ?=
START           ?=
END             ?=
LOCATIONS       ?=
REFS            ?=
ZONE            ?=
ZERO_FILL       ?=
SKIP_UNAUTHORIZED ?=

$(SAM_STAMP): requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(SAM_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-sam.txt
	@touch $(SAM_STAMP)

sam-venv: $(SAM_STAMP) ## the AWS SAM CLI in its own virtualenv (.venv-sam)

sam-lock: ## regenerate requirements-sam.txt for SAM_CLI_VERSION
	rm -rf $(SAM_VENV)-lock && $(PYTHON) -m venv $(SAM_VENV)-lock
	$(SAM_VENV)-lock/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION) aws-sam-cli==$(SAM_CLI_VERSION)
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

invoke: $(STAMP) ## on-demand export on the deployed stack: make invoke BRAND=1234 START=2023-06-08 END=2023-06-30 [LOCATIONS=1,2|REFS=A,B|ZONE=uuid] [ZERO_FILL=1|SKIP_UNAUTHORIZED=1], or EVENT=events/<file>.json
	@test -n "$(EVENT)" -o \( -n "$(BRAND)" -a -n "$(START)" -a -n "$(END)" \) || \
	  { echo "usage: make invoke BRAND=<id> START=YYYY-MM-DD END=YYYY-MM-DD [LOCATIONS=1,2,3 | REFS=US0658,FR2561 | ZONE=<uuid>] [ZERO_FILL=1 | SKIP_UNAUTHORIZED=1] [STACK_NAME=$(STACK_NAME)], or make invoke EVENT=events/<file>.json" >&2; exit 2; }
	$(PY) scripts/invoke.py --stack-name $(STACK_NAME) $(if $(EVENT),--event $(EVENT),--brand $(BRAND) \
	  --start $(START) --end $(END) $(if $(LOCATIONS),--locations $(LOCATIONS)) \
	  $(if $(REFS),--references $(REFS)) $(if $(ZONE),--zone $(ZONE)) $(if $(ZERO_FILL),--zero-fill) \
	  $(if $(SKIP_UNAUTHORIZED),--skip-unauthorized))

logs: $(SAM_STAMP) ## tail the exporter's logs of the deployed stack
	$(SAM) logs --stack-name $(STACK_NAME) --name ExporterFunction --tail

delete: $(SAM_STAMP) ## delete the stack (the export bucket and its data are retained)
	$(SAM) delete --stack-name $(STACK_NAME)

clean-sam: ## remove the SAM virtualenv and build output
	rm -rf $(SAM_VENV) .aws-sam

# --- the IaC scanner: Checkov on template.yaml ----------------------------------------
# In its own virtualenv like the SAM CLI (its pins conflict with the dev set);
# requirements-checkov.txt is its full pin set. A finding fails `make test` unless
# the resource skips it inline (Metadata: checkov: skip: id + comment); every skip
# states its reason and is listed in docs/reliability.md (tests/template checks).
# --skip-download: no call to the vendor's platform (CI reaches PyPI only).
CHECKOV_VENV    ?= .venv-checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION ?= 3.3.30
CHECKOV         = $(CHECKOV_VENV)/bin/checkov

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

checkov-venv: $(CHECKOV_STAMP) ## Checkov in its own virtualenv (.venv-checkov)

scan: $(CHECKOV_STAMP) ## Checkov on template.yaml: fails on any finding not skipped inline with a reason
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

checkov-lock: ## regenerate requirements-checkov.txt for CHECKOV_VERSION
	rm -rf $(CHECKOV_VENV)-lock && $(PYTHON) -m venv $(CHECKOV_VENV)-lock
	$(CHECKOV_VENV)-lock/bin/python -m pip install -q --disable-pip-version-check pip==$(PIP_VERSION) checkov==$(CHECKOV_VERSION)
	( sed -n '/^#/p' requirements-checkov.txt; $(CHECKOV_VENV)-lock/bin/python -m pip freeze ) > requirements-checkov.txt.new
	mv requirements-checkov.txt.new requirements-checkov.txt && rm -rf $(CHECKOV_VENV)-lock

# --- the fault and bad-input campaign (docs/reliability.md) --------------------------
# `make test` runs it at CI size (tests/chaos); this runs it larger and rewrites the
# table in docs/reliability.md. CHAOS_SIZE=ci gives the quick version of the same table.
CHAOS_SIZE ?= full

chaos: $(STAMP) ## fault and bad-input campaign at full size; writes docs/reliability.md
	CHAOS_SIZE=$(CHAOS_SIZE) CHAOS_REPORT=docs/reliability.md $(VENV)/bin/pytest tests/chaos -q $(PYTEST_ARGS)

# --- planted bugs (scripts/mutants.py) ------------------------------------------------
# Each known kind of bug is planted in a scratch copy of the working tree and its tests
# must fail; a spec whose snippet moved stops the run (specs: scripts/mutant_specs.py,
# one per claim of docs/reliability.md). MUTANTS_ARGS: --only NAME, --sample, --list.
# `make test` runs --sample through tests/unit/test_claims.py.
.PHONY: mutants
MUTANTS_ARGS ?=

mutants: $(STAMP) ## plant each known kind of bug in a scratch copy: the tests must catch all
	$(PY) scripts/mutants.py $(MUTANTS_ARGS)
