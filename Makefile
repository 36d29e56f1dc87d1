# `make demo` and `make test` each set up .venv on a fresh machine, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
AVSC := $(PY) -m avsc_core
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 3
export QT_QPA_PLATFORM ?= offscreen
DEMO := demo-out

.PHONY: demo test gui bench setup clean lock package

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,export,cluster]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# The main job end to end on built-in data: make a sample dataset, train a tiny
# two-phase model, evaluate it on its held-out clips, classify two clips, and render
# one clip's CQT.
demo: $(STAMP)
	@rm -rf $(DEMO); start=$$(date +%s); set -e; \
	$(AVSC) sample-data $(DEMO)/data --jobs 2; \
	$(AVSC) train $(DEMO)/data --out $(DEMO)/model --preset tiny --jobs 2; \
	$(AVSC) evaluate --model $(DEMO)/model $(DEMO)/data --json $(DEMO)/metrics.json --report $(DEMO)/report; \
	$(AVSC) classify --model $(DEMO)/model $(DEMO)/data/tram/tram-000.mp4 $(DEMO)/data/airport/airport-000.mp4; \
	$(AVSC) features $(DEMO)/data/bus/bus-000.mp4 --kind cqt --png $(DEMO)/bus-cqt.png; \
	echo "demo finished in $$(( $$(date +%s) - start )) s: see $(DEMO)/"

# Installs the X11 libraries Qt's window needs (with apt, when they are missing).
gui: $(STAMP)
	QT_QPA_PLATFORM=xcb $(PY) -m app.system_libs --install
	QT_QPA_PLATFORM= $(VENV)/bin/avsc-gui

bench: $(STAMP)
	$(PY) benchmarks/features.py

# The Linux installer (dist/avsc-<version>-linux-<arch>.tar.gz), smoke-tested; see
# packaging/README.md.
package: $(STAMP)
	PY=$(PY) packaging/build.sh

# Re-pin the tested versions after changing dependencies.
lock:
	$(PY) -m pip freeze --exclude-editable | grep -v '^avsc' > constraints.txt

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info
