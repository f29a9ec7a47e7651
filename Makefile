# The workshop's commands. The README's two: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NPM    := $(shell command -v node >/dev/null 2>&1 && command -v npm 2>/dev/null)
PYTHON_CHECK := 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "google-adk 2.13 needs Python 3.11 or newer: run make with PYTHON=python3.11 (or newer)")'

.PHONY: setup lab test test-clients test-copy lint exercises clean-notebooks emulator serve serve-prod bench load clean agui-env test-agui

$(STAMP): requirements.txt reference_server/requirements.txt pyproject.toml
	@$(PYTHON) -c $(PYTHON_CHECK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# No "Jupyter news" prompt: the workshop runs offline.
	@$(BIN)/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the pinned requirements (the other targets do it for you)

# Offline-friendly: no update checks; --allow-root only where we are root (containers).
LAB_FLAGS := --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate \
             $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

lab: $(STAMP)  ## open JupyterLab on the exercise notebooks
	cd notebooks && ../$(BIN)/jupyter lab $(LAB_FLAGS) $(LAB_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check workshop reference_server examples tests solutions

# The node tests of the server's protocols (tests/js: the `ai` and @ag-ui/client packages), from
# the lockfile, when node and npm are installed (.ci/run installs them; else those tests skip).
tests/js/node_modules/.package-lock.json: tests/js/package-lock.json
	cd tests/js && $(NPM) ci --no-audit --no-fund --loglevel=error

test: $(STAMP) lint $(if $(NPM),tests/js/node_modules/.package-lock.json)  ## lint, check notebooks/ is up to date, run every test (solutions via nbmake), then the client and AG-UI suites
	$(BIN)/python -m workshop.exercises --check
	@# 4 workers on 2 cores: the notebooks mostly wait on the emulator's model-like pacing.
	$(BIN)/python -m pytest -n 4 --nbmake --nbmake-timeout=300 tests solutions
	@$(MAKE) --no-print-directory test-copy
	@$(MAKE) --no-print-directory test-clients
	@$(MAKE) --no-print-directory test-agui

# The reference server as a reader copies it: a virtual environment holding only
# reference_server/requirements.txt (.venv-server), the folder copied alone, served and streamed
# (tests/test_reference_server_standalone.py runs the copy with that interpreter).
SERVER_VENV  := .venv-server
SERVER_STAMP := $(SERVER_VENV)/.installed-stamp

$(SERVER_STAMP): reference_server/requirements.txt
	@$(PYTHON) -c $(PYTHON_CHECK)
	@test -x $(SERVER_VENV)/bin/python || $(PYTHON) -m venv $(SERVER_VENV)
	$(SERVER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r reference_server/requirements.txt
	@touch $(SERVER_STAMP)

test-copy: $(STAMP) $(SERVER_STAMP)  ## the reference server copied alone, run in a venv of its own requirements only
	WORKSHOP_SERVER_PYTHON=$(CURDIR)/$(SERVER_VENV)/bin/python $(BIN)/python -m pytest tests/test_reference_server_standalone.py

# Third-party Gemini clients against the emulator (tests/clients): LiteLLM, LangChain and
# pydantic-ai in their own venv (LiteLLM's aiohttp must not reach the workshop's .venv), and
# the JavaScript @google/genai when node and npm are installed (else its test skips).
CLIENTS_VENV  := .venv-clients
CLIENTS_STAMP := $(CLIENTS_VENV)/.installed-stamp
CLIENTS_JS    := tests/clients/js

$(CLIENTS_STAMP): tests/clients/requirements.txt requirements.txt reference_server/requirements.txt pyproject.toml
	@$(PYTHON) -c $(PYTHON_CHECK)
	@test -x $(CLIENTS_VENV)/bin/python || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
	@touch $(CLIENTS_STAMP)

# npm writes node_modules/.package-lock.json: newer than package-lock.json until that changes.
$(CLIENTS_JS)/node_modules/.package-lock.json: $(CLIENTS_JS)/package-lock.json
	cd $(CLIENTS_JS) && $(NPM) ci --no-audit --no-fund --loglevel=error

test-clients: $(CLIENTS_STAMP) $(if $(NPM),$(CLIENTS_JS)/node_modules/.package-lock.json)  ## the third-party clients (LiteLLM, LangChain, pydantic-ai, JS @google/genai) against the emulator
	$(CLIENTS_VENV)/bin/python -m pytest tests/clients

exercises: $(STAMP)  ## regenerate notebooks/ from solutions/
	$(BIN)/python -m workshop.notebooks clean solutions/*.ipynb
	$(BIN)/python -m workshop.exercises

clean-notebooks: $(STAMP)  ## strip outputs and volatile metadata from every notebook
	$(BIN)/python -m workshop.notebooks clean

emulator: $(STAMP)  ## run the offline Gemini emulator standalone on 127.0.0.1:8089
	$(BIN)/python -m workshop.gemini_emulator --host 127.0.0.1 --port 8089

serve: $(STAMP)  ## run the reference SSE server on 127.0.0.1:$${PORT:-8000} (offline emulator unless a key is set)
	$(BIN)/python -m workshop.serve

serve-prod: $(STAMP)  ## nginx on $${PORT:-8080} in front of $${WORKERS:-2} reference-server workers sharing sessions and streams (needs Debian's nginx)
	$(BIN)/python -m workshop.stack

bench: $(STAMP)  ## measure what streaming costs (4 configurations, offline), then the reference against /run_sse head to head; results in results/bench/
	$(BIN)/python -m workshop.bench $(BENCH_ARGS)
	$(BIN)/python -m workshop.bench.versus

load: $(STAMP)  ## load test: 200 concurrent streaming conversations (offline, realistic pacing): p50/p99 latency, memory
	$(BIN)/python -m workshop.loadtest --streams 200 $(LOAD_ARGS)

# The AG-UI extra lives in its own environment: ag-ui-adk requires aiohttp, and with aiohttp
# importable google-genai uses it instead of httpx for every lesson (reference_server/ag_ui.py).
# .venv-agui sees .venv's packages (a .pth line) and adds requirements-agui.txt on top.
AGUI := .venv-agui

agui-env: $(STAMP)  ## the AG-UI extra's environment (.venv-agui: .venv's packages + ag-ui-adk, aiohttp)
	@test -x $(AGUI)/bin/python || $(PYTHON) -m venv $(AGUI)
	@echo "import site; site.addsitedir('$$($(BIN)/python -c 'import site; print(site.getsitepackages()[0])')')" \
		> "$$($(AGUI)/bin/python -c 'import site; print(site.getsitepackages()[0])')/workshop-main-venv.pth"
	$(AGUI)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-agui.txt

test-agui: agui-env  ## run the AG-UI tests in .venv-agui (they skip in .venv)
	$(AGUI)/bin/python -m pytest tests/test_ag_ui.py

clean:  ## remove the virtual environments and caches
	rm -rf $(VENV) $(AGUI) $(CLIENTS_VENV) $(SERVER_VENV) $(CLIENTS_JS)/node_modules tests/js/node_modules .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
