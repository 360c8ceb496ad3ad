# visionpipe: `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# tflite-support needs protobuf<4: its own small virtualenv (TFLite metadata, Task Library).
SUPPORT = .venv-tflite-support
DEBIAN  = libusb-1.0-0
# Headless Chromium renders the run report in the report test (tests/e2e/test_evaluation.py).
BROWSER = chromium

.PHONY: install browser lint demo test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(SUPPORT)/bin/python:
	@dpkg -s $(DEBIAN) >/dev/null 2>&1 || apt-get install -y -q $(DEBIAN) || \
		{ echo "install the Debian packages $(DEBIAN) (needed by tflite-support)"; exit 1; }
	$(PYTHON) -m venv $(SUPPORT) || python3 -m venv $(SUPPORT)
	$(SUPPORT)/bin/pip install --quiet 'tflite-support==0.4.4'

browser:
	@dpkg -s $(BROWSER) >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q $(BROWSER); } || \
		{ echo "install the Debian package $(BROWSER) (the report test opens the report in it)"; exit 1; }

# What the pipeline needs; the browser is only for the report test, so only `make test` installs it.
install: $(STAMP) $(SUPPORT)/bin/python

demo: install
	$(BIN)/visionpipe run --config configs/demo.yaml

# Style, the layer contracts of ARCHITECTURE.md (pyproject's [tool.importlinter]) and the type check.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# pytest-randomly runs the tests in a random order and prints its seed at the top and the end;
# replay an order with `make test PYTEST_ARGS=--randomly-seed=N`. pytest-xdist runs two test
# modules at a time (a module's tests and fixtures stay on one worker). The 25 slowest tests are
# listed at the end: the suite should stay near 20 minutes on 2 cores.
PYTEST_ARGS ?=
test: lint browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25 $(PYTEST_ARGS)

test-fast: lint browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf visionpipe_runs .pytest_cache
