# Two commands: `make run` starts the service on the sandbox tenant; `make test` runs every check.
# Both install what they need (a virtual environment in .venv, npm packages in node_modules).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: run test lint typecheck contracts unit install fmt clean bench infra-check

install: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Options of `seatkeeper serve` (`.venv/bin/seatkeeper serve --help`), e.g. make run SERVE_ARGS="--port 7072".
SERVE_ARGS ?=
run: $(STAMP)
	$(BIN)/python -m seatkeeper serve $(SERVE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest

test: lint typecheck contracts unit infra-check

# checkov parses Bicep itself (no Bicep compiler here). Its own venv: its pins clash with ours. Offline:
# no guideline download, no update check. Fails on any failed check (skips carry a reason inline) and on
# any Bicep file it could not parse.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed
CHECKOV_REPORT := $(INFRA_VENV)/checkov.json
$(INFRA_STAMP): requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

# requirements.txt alone (what Azure installs) must install into a clean Python and index function_app.py.
CLEAN_VENV := $(INFRA_VENV)/clean
CLEAN_STAMP := $(CLEAN_VENV)/.installed
$(CLEAN_STAMP): requirements.txt
	$(PYTHON) -m venv --clear $(CLEAN_VENV)
	$(CLEAN_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(CLEAN_VENV)/bin/python -m pip check
	touch $@

infra-check: $(INFRA_STAMP) $(CLEAN_STAMP)
	cd $(CLEAN_VENV) && PYTHONPATH=$(CURDIR) ./bin/python $(CURDIR)/scripts/check_runtime_imports.py
	BC_SKIP_MAPPING=TRUE CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE $(INFRA_VENV)/bin/checkov \
		--directory infra --directory .github --framework bicep github_actions --skip-download --compact --quiet \
		--output cli --output json --output-file-path console,$(CHECKOV_REPORT)
	$(INFRA_VENV)/bin/python -c "import json,sys; r=json.load(open('$(CHECKOV_REPORT)')); r=r if isinstance(r,list) else [r]; \
		s={x['check_type']: x['summary'] for x in r}; ok=s.get('bicep',{}).get('resource_count',0) > 0 \
		and all(v['parsing_errors'] == 0 for v in s.values()); sys.exit(0 if ok else 'checkov: unparsed files or no Bicep resource: %s' % s)"

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench --record

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
