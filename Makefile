# Two commands do all setup on a fresh machine:
#   make run    create .venv (Python 3.10) if missing, install pinned dependencies, run local_runner.py
#   make test   same environment, run the default (fast) test suite
# More: make test-all (slow + e2e tests too), make lock (re-pin constraints.txt), make clean.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON_VERSION := $(shell cat .python-version)
# TFT 1.16 and TFMA 0.47 need Keras 2 (tf_keras); this must be set before TensorFlow is imported.
export TF_USE_LEGACY_KERAS := 1
export PYTHONWARNINGS := ignore::FutureWarning:google.api_core._python_version_support

# The interpreter to build the venv from: python3.10 on PATH (pyenv honours .python-version),
# else pyenv's install of the pinned version.
BASE_PYTHON ?= $(shell command -v python3.10 2>/dev/null || ls $(HOME)/.pyenv/versions/$(PYTHON_VERSION)/bin/python3.10 2>/dev/null)

.PHONY: venv browser run test test-all lock clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt setup.py
	@if [ ! -x $(PY) ]; then \
	  if [ -z "$(BASE_PYTHON)" ]; then echo "Python 3.10 not found: install it (pyenv install $(PYTHON_VERSION)) or set BASE_PYTHON=/path/to/python3.10"; exit 1; fi; \
	  $(BASE_PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 10), "need Python 3.10, got " + sys.version' && \
	  $(BASE_PYTHON) -m venv $(VENV); \
	fi
	$(PY) -m pip install -q --upgrade pip==26.3 setuptools==84.2.1 wheel
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $@

# The web page test drives headless Chromium. On CI (CI=true, root, Debian) it is installed here; elsewhere
# the test is skipped with the reason unless you install it yourself (apt-get install chromium).
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ -n "$$CI" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing chromium for the web page test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed; the web page test will be skipped"; \
	fi

run: venv
	$(PY) local_runner.py $(ARGS)

test: venv browser
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

lock: venv
	{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf outputs .pytest_cache
