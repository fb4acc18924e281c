#!/usr/bin/env bash
# The README's test command: install everything the tests need, then run the whole suite
# (unit, worker and end-to-end tests on real Redis, dockerd and registry, started per run).
set -euo pipefail
cd "$(dirname "$0")/../.."
REGOPS_EXTRAS=test bash deploy/local/setup.sh
exec .venv/bin/python -m pytest "$@"
