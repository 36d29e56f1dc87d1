# `make demo` and `make test` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 2
export QT_QPA_PLATFORM ?= offscreen
DEMO := demo-out

.PHONY: demo test gui bench setup clean lock

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,export]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(STAMP)
	$(PY) -m avsc_core sample-data $(DEMO)/data
	$(PY) -m avsc_core features $(DEMO)/data/park/$$(ls $(DEMO)/data/park | head -1) --kind mel --png $(DEMO)/park-mel.png
	@echo "demo finished: see $(DEMO)/"

gui: $(STAMP)
	QT_QPA_PLATFORM= $(VENV)/bin/avsc-gui

bench: $(STAMP)
	$(PY) benchmarks/features.py

# Re-pin the tested versions after changing dependencies.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^avsc' > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info
