#!/usr/bin/env bash
# regops benchmarks: the one documented command (README, "Tests and benchmarks").
#
#   bash tests/benchmarks/run.sh                 # all benchmarks: ack, slow, then push
#   bash tests/benchmarks/run.sh ack [OPTIONS]   # only the acknowledgement benchmark
#   bash tests/benchmarks/run.sh slow [OPTIONS]  # only /healthz and a command with 500 slow clients open
#   bash tests/benchmarks/run.sh push [OPTIONS]  # only the end-to-end push benchmark
#
# OPTIONS go to the benchmark (`run.sh ack --help`, `run.sh slow --help`, ...), e.g.
#   run.sh ack --phases latency --rate 300      run.sh push --rounds 5
# As root on Debian: installs what the tests need (deploy/local/setup.sh) and wrk.
# Every service a benchmark starts (Redis, dockerd, registries, regops serve/worker)
# runs on free ports in temp dirs and is stopped on exit, Ctrl-C included.
# Exit status: 0 when every target is met, 1 when one is missed, 2+ on errors.
set -euo pipefail
cd "$(dirname "$0")/../.."

which=${1:-all}
[ $# -gt 0 ] && shift
case "$which" in
  ack|slow|push) ;;
  all) if [ $# -gt 0 ]; then echo "run.sh: options go with one benchmark: run.sh ack|slow|push OPTIONS" >&2; exit 2; fi ;;
  -h|--help|help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "run.sh: unknown benchmark '$which' (ack, slow, push or all)" >&2; exit 2 ;;
esac

REGOPS_EXTRAS=test bash deploy/local/setup.sh
if [ "$which" != slow ] && ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "run.sh: wrk is missing and installing it needs root (apt-get install wrk)" >&2; exit 2
  fi
  echo "run.sh: installing wrk" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

case "$which" in
  ack|slow|push) exec .venv/bin/python -m "tests.benchmarks.$which" "$@" ;;
  all)
    status=0
    .venv/bin/python -m tests.benchmarks.ack || status=$?
    [ "$status" -ge 2 ] && exit "$status"   # an error or Ctrl-C, not a missed target
    echo
    slow_status=0
    .venv/bin/python -m tests.benchmarks.slow || slow_status=$?
    [ "$slow_status" -ge 2 ] && exit "$slow_status"
    status=$(( status > slow_status ? status : slow_status ))
    echo
    push_status=0
    .venv/bin/python -m tests.benchmarks.push || push_status=$?
    [ "$push_status" -ge 2 ] && exit "$push_status"
    exit $(( status > push_status ? status : push_status )) ;;
esac
