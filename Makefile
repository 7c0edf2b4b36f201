# Beamline Console: `make run` runs the product, `make test` runs the tests.
# Both create the virtualenv and install the requirements on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run manage test bench traffic clean

$(INSTALLED): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(INSTALLED)

install: $(INSTALLED)

run: install
	$(BIN)/python -m beamline_console.launcher

# A management command with the settings `make run` uses, e.g. make manage ARGS="parallel_execution status".
manage: install
	$(BIN)/python -m beamline_console.launcher manage $(ARGS)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.propagation
	$(BIN)/python -m bench.telemetry

traffic: install
	$(BIN)/python -m bench.traffic

clean:
	rm -rf $(VENV) var
