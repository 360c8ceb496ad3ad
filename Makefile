# visionpipe: `make demo` and `make test` each set up everything they need on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# tflite-support needs protobuf<4: its own small virtualenv (TFLite metadata, Task Library).
SUPPORT = .venv-tflite-support
DEBIAN  = libusb-1.0-0

.PHONY: install lint demo test test-fast clean

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

install: $(STAMP) $(SUPPORT)/bin/python

demo: install
	$(BIN)/visionpipe run --config configs/demo.yaml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf visionpipe_runs .pytest_cache
