# The same targets CI runs. `make demo` and `make test` set everything up first.
# mDNS stays on loopback for tests, benchmarks and the demo (DESIGN §7).
export CLASSCAST_MDNS_INTERFACES ?= 127.0.0.1
.PHONY: setup demo test lint types check bench docs catalogues

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/classcast demo

test:
	@scripts/setup.sh --test
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

types: setup
	.venv/bin/mypy

check: lint types test

docs: setup
	.venv/bin/python -m scripts.gen_cli_docs

# After editing a .po file under kiosk/locale, controller/locale or i18n/locale: commit the .mo too.
catalogues: setup
	.venv/bin/python -m scripts.compile_catalogues

bench: setup
	.venv/bin/python -m bench.control_rtt
	.venv/bin/python -m bench.transfer
	.venv/bin/python -m bench.fanout
	.venv/bin/python -m bench.discovery
	.venv/bin/python -m bench.pairing
	.venv/bin/python -m bench.attack
