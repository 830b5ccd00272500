# The walkthrough's commands. `make run` and `make test` set up .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The project's lock (make lock writes it from uv.lock); make install installs exactly these versions.
LOCK := locks/project.txt
# A folder of package files (make wheelhouse fills it). When there is one, every install (the project's and
# the job environments') uses it alone: no index, no network. WHEELHOUSE= (empty) uses the index instead.
WHEELHOUSE ?= $(wildcard $(CURDIR)/wheelhouse)
override WHEELHOUSE := $(abspath $(WHEELHOUSE))
export WHEELHOUSE
FROM = $(if $(WHEELHOUSE),--no-index --find-links $(WHEELHOUSE))
# make install builds the job environments the local workspace needs (the Chainer track's): JOB_ENVS=no skips it
JOB_ENVS ?= yes
NOTEBOOKS := $(shell git ls-files 'notebooks/*.ipynb' 'notebooks-*/*.ipynb' 'aml-offline/tests/*.ipynb' 2>/dev/null)

NB ?=

# The walkthrough's language: make run LANG=de, make lab LANG=zh_TW (de, hu, pt_BR, zh_TW: notebooks-<lang>/);
# English (notebooks/) by default. Only a LANG given on make's command line chooses: the shell's own LANG
# (C.UTF-8, en_US.UTF-8) is this machine's locale, not a choice. Given, it is not passed on as the recipes' locale.
ifeq ($(origin LANG),command line)
WALK_LANG := $(LANG)
unexport LANG
endif
WALK_LANG ?=

.PHONY: help install run notebook test test-samples test-browser chromium lint lab kernel preflight mlflow-ui reset bench bench-serve clean lock lock-upgrade wheelhouse translations

help:
	@echo "make run   - run the walkthrough end to end (creates .venv on first use); make run LANG=de: in German (de, hu, pt_BR, zh_TW)"
	@echo "make notebook NB=path/to/x.ipynb - run any Azure ML SDK v1 notebook offline, unmodified, against the local workspace"
	@echo "make reset - stop the local workspace's web services, runs and MLflow UIs, then delete it (.azureml-local/)"
	@echo "make test  - lint, check notebooks are stripped, run the tests and every notebook"
	@echo "make test-samples - run the 20 notebooks written like Microsoft's public samples through aml-offline, two students at once in one workspace, and the English v2 track (make test runs it in Chinese) (CI runs it after make test)"
	@echo "make test-browser - run every notebook in JupyterLab in Chromium, check what renders, save screenshots"
	@echo "make lab   - open JupyterLab on the project's environment; make lab LANG=zh_TW: the notebooks and JupyterLab in that language"
	@echo "make translations - after an English notebook changed: update the catalogues (locales/), rebuild notebooks-<lang>/, list what translators must do"
	@echo "make kernel - register .venv as the Jupyter kernel '$(KERNEL_DISPLAY_NAME)' (pick it on an Azure ML compute instance)"
	@echo "make preflight - instructors: run the walkthrough on Azure ML with the smallest settings, clean up, write a dated report"
	@echo "make bench - time training: the original script's port against ours, 1 worker against 2"
	@echo "make bench-serve - measure the local web service: requests/s and latency"
	@echo "make mlflow-ui - browse the local workspace's runs and models in the MLflow UI"
	@echo "make lock  - update the lock files (locks/, uv.lock) after changing pyproject.toml or scripts/*-env.yml"
	@echo "make lock-upgrade - move every lock to the newest versions the bounds allow"
	@echo "make wheelhouse - gather every package file (and MNIST) into wheelhouse/ for installs with no network"

# Re-install only when the dependencies or their locks change; otherwise this is a no-op.
# Installs the lock (exact versions, hash-checked), then the two distributions of this repository (the local
# workspace, aml-offline/, and the walkthrough), then builds the job environments.
$(STAMP): pyproject.toml aml-offline/pyproject.toml $(wildcard locks/*.txt)
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else "Python 3.11 is needed, found %d.%d at $(PYTHON): install 3.11 or run make PYTHON=/path/to/python3.11" % v)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(WHEELHOUSE)" ]; then echo "Installing from the wheelhouse $(WHEELHOUSE) only (no network)"; fi
	$(PY) -m pip install --quiet --disable-pip-version-check $(FROM) "$$(sed -n 's/^\(uv==[^ ;]*\).*/\1/p' $(LOCK))"
	$(VENV)/bin/uv pip install --python $(PY) $(FROM) -r $(LOCK)
	$(VENV)/bin/uv pip install --python $(PY) $(FROM) --no-deps -e ./aml-offline -e .
	@if [ "$(JOB_ENVS)" = yes ]; then $(PY) -m helpers.locks prepare; fi
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	AML_LANG=$(WALK_LANG) $(PY) -m helpers.walkthrough

notebook: $(STAMP)
	@if [ -z "$(NB)" ]; then echo "Which notebook? make notebook NB=path/to/notebook.ipynb"; exit 2; fi
	$(VENV)/bin/aml-offline run $(NB)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@if [ -n "$(NOTEBOOKS)" ]; then $(VENV)/bin/nbstripout --verify $(NOTEBOOKS); fi
	$(PY) -m pytest

# The notebooks written like Microsoft's public samples (aml-offline/tests/v1_samples, v2_samples), each through
# `aml-offline run` in a kernel of its own: about 13 minutes of CPU, so they have their own command. With them, two
# students running 00-07 at once in one local workspace (tests/test_two_students.py: two walkthroughs of CPU), and
# the English SDK v2 track under nbval (make test runs the same code cells in Traditional Chinese: conftest.py).
test-samples: $(STAMP)
	$(PY) -m pytest -c pyproject.toml -m samples aml-offline/tests/test_v1_samples.py aml-offline/tests/test_v2_samples.py tests/test_two_students.py --no-cov
	AML_TEST_ENGLISH_V2=1 $(PY) -m pytest -c pyproject.toml -n 0 notebooks/v2 --no-cov

CHROMIUM ?= /usr/bin/chromium

test-browser: $(STAMP) chromium
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest -n 0 -m browser tests/test_browser.py --no-cov

# Playwright drives the system's Chromium: install Debian's package when it is missing and we may.
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get install -y chromium; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get install -y chromium; \
	  else echo "Chromium is needed at $(CHROMIUM): install it (Debian/Ubuntu: sudo apt install chromium)," \
	    "or run make test-browser CHROMIUM=/path/to/chromium"; exit 1; fi; \
	fi

bench: $(STAMP)
	$(PY) benchmarks/train.py

bench-serve: $(STAMP)
	$(PY) benchmarks/serve.py

lint: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lab: $(STAMP)
	AML_LANG=$(WALK_LANG) $(PY) -m helpers.i18n lab

# One English source (notebooks/, the docs' quick start and instructor parts, the helpers' messages) -> gettext
# catalogues (locales/) -> notebooks-<lang>/. Fails, listing each entry, until the translators have acted.
translations: $(STAMP)
	$(PY) -m helpers.translations all

# The project's environment as a Jupyter kernel of this user (an Azure ML compute instance's JupyterLab lists it):
# each notebook's first cell names it when it runs in a kernel without the project.
KERNEL_NAME := azureml-keras-mnist
KERNEL_DISPLAY_NAME := Python (azureml-keras-mnist)

kernel: $(STAMP)
	$(PY) -m ipykernel install --user --name $(KERNEL_NAME) --display-name "$(KERNEL_DISPLAY_NAME)"
	@echo "In JupyterLab: Kernel > Change Kernel > $(KERNEL_DISPLAY_NAME)"

# Instructors, before the day: the walkthrough on Azure ML (a workspace config.json is needed) with the smallest
# settings; deletes what it created and writes a dated report to build/preflight/ (docs/instructors.md).
preflight: $(STAMP)
	$(PY) -m helpers.preflight

reset: $(STAMP)
	$(VENV)/bin/aml-offline reset --yes

mlflow-ui: $(STAMP)
	$(VENV)/bin/aml-offline mlflow-ui

lock: $(STAMP)
	$(PY) -m helpers.locks update

lock-upgrade: $(STAMP)
	$(PY) -m helpers.locks upgrade

wheelhouse: $(STAMP)
	$(PY) -m helpers.wheelhouse $(or $(WHEELHOUSE),$(CURDIR)/wheelhouse)

clean:
	rm -rf build .pytest_cache


# On a machine with an NVIDIA GPU: build the job environments exactly as their yml files list them and train in
# each (1 process, 2 workers, Chainer); prints the device each run used and its seconds per epoch.
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py
