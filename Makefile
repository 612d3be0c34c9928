# FCR: everything starts here. Run as root on Debian 12.
SHELL := /bin/sh
PY := .venv/bin/python
CONFIG ?= docs/examples/fcrd.json
CONTROL ?= /run/fcr/fcrd.sock
FUZZ_SECONDS ?= 300
BENCH_ARGS ?=

.PHONY: bootstrap run test unit interop bench fuzz lint clean

bootstrap:
	@sh scripts/bootstrap.sh

run: bootstrap
	@CONFIG=$(CONFIG) CONTROL=$(CONTROL) bash scripts/run.sh

test: bootstrap
	@sh scripts/run-tests.sh

unit: bootstrap
	$(PY) -m pytest -q tests/unit

interop: bootstrap
	$(PY) -m pytest -q -m interop tests/interop

bench: bootstrap
	$(PY) bench/bgp_table.py $(BENCH_ARGS)

fuzz: bootstrap
	$(PY) -m tests.fuzz.runner --seconds $(FUZZ_SECONDS)

lint: bootstrap
	$(PY) -m ruff check appliance tests bench

clean:
	rm -rf .venv .pytest_cache .hypothesis .ruff_cache bench/results
