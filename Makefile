# Everyday commands. `make help` lists them; each is one line you can also type yourself.
PYTHON ?= .venv/bin/python

.PHONY: help setup test test-unit test-redis test-docker test-e2e lint typecheck check bench quickstart

help:  ## this list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup:  ## install the services the tests need (Debian, as root) and the package into .venv
	REGOPS_EXTRAS=test bash deploy/local/setup.sh

test:  ## the whole suite (what CI runs): unit, redis, docker and e2e tiers
	bash deploy/local/test.sh

test-unit:  ## the unit tier only: no services, seconds
	$(PYTHON) -m pytest -m unit -q

test-redis:  ## tests on a real redis-server
	$(PYTHON) -m pytest -m "redis and not e2e" -q

test-docker:  ## tests on a real dockerd and registry
	$(PYTHON) -m pytest -m "docker and not e2e" -q

test-e2e:  ## regops serve, workers and shell as real processes
	$(PYTHON) -m pytest -m e2e -q

lint:  ## ruff
	$(PYTHON) -m ruff check bot workers tests

typecheck:  ## mypy (strict about untyped functions in bot/ and workers/)
	$(PYTHON) -m mypy

check: lint typecheck test-unit  ## what to run before a commit

bench:  ## the benchmarks (ack throughput and latency, end-to-end push)
	bash tests/benchmarks/run.sh

quickstart:  ## regops on its embedded default: the console with a local Redis, Docker engine and registry
	bash deploy/local/quickstart.sh
