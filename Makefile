# The two README commands. Both create .venv and install the project on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test dev model-check

# The demo needs the runtime only (56 s to install here instead of 70 s with the test tools).
$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.runtime
	$(VENV)/bin/mlops demo

test: install
	$(PY) -m pytest

# The model regression gate (CI runs it): every target's holdout metrics against .ci/model-quality.json.
model-check: $(VENV)/.runtime
	$(VENV)/bin/mlops model-check

dev: $(VENV)/.runtime
	$(VENV)/bin/mlops dev
