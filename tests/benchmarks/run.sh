#!/usr/bin/env bash
# regops benchmarks: the one documented command (README, "Tests and benchmarks").
#
#   bash tests/benchmarks/run.sh                 # all benchmarks: ack, slow, push, registry, then events
#   bash tests/benchmarks/run.sh ack [OPTIONS]   # only the acknowledgement benchmark
#   bash tests/benchmarks/run.sh slow [OPTIONS]  # only /healthz and a command with 500 slow clients open
#   bash tests/benchmarks/run.sh push [OPTIONS]  # only the end-to-end push benchmark
#   bash tests/benchmarks/run.sh registry [OPTS] # only promote/tags against skopeo copy, worker memory
#   bash tests/benchmarks/run.sh events [OPTS]   # only registry notifications: intake latency, fan-out
#
# OPTIONS go to the benchmark (`run.sh ack --help`, `run.sh slow --help`, ...), e.g.
#   run.sh ack --phases latency --rate 300      run.sh push --rounds 5
# As root on Debian: installs what the tests need (deploy/local/setup.sh), wrk and skopeo.
# Every service a benchmark starts (Redis, dockerd, registries, regops serve/worker)
# runs on free ports in temp dirs and is stopped on exit, Ctrl-C included.
# Exit status: 0 when every target is met, 1 when one is missed, 2+ on errors.
set -euo pipefail
cd "$(dirname "$0")/../.."

which=${1:-all}
[ $# -gt 0 ] && shift
case "$which" in
  ack|slow|push|registry|events) ;;
  all) if [ $# -gt 0 ]; then echo "run.sh: options go with one benchmark: run.sh ack|slow|push|registry|events OPTIONS" >&2; exit 2; fi ;;
  -h|--help|help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "run.sh: unknown benchmark '$which' (ack, slow, push, registry, events or all)" >&2; exit 2 ;;
esac

if [ -L .venv ]; then
  # A worktree whose .venv links to another checkout's venv: reinstalling (pip install -e .) would
  # point that venv at this checkout.  The benchmarks put this checkout first on PYTHONPATH instead.
  echo "run.sh: .venv is a link to a shared venv; not running deploy/local/setup.sh" >&2
else
  REGOPS_EXTRAS=test bash deploy/local/setup.sh
fi
apt_install() {  # apt_install COMMAND PACKAGE: install PACKAGE unless COMMAND is there
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "run.sh: $1 is missing and installing it needs root (apt-get install $2)" >&2; exit 2
  fi
  echo "run.sh: installing $2" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  fi
}
case "$which" in slow|registry|events) ;; *) apt_install wrk wrk ;; esac
case "$which" in registry|all) apt_install skopeo skopeo ;; esac

case "$which" in
  ack|slow|push|registry|events) exec .venv/bin/python -m "tests.benchmarks.$which" "$@" ;;
  all)
    status=0
    for benchmark in ack slow push registry events; do
      this=0
      .venv/bin/python -m "tests.benchmarks.$benchmark" || this=$?
      [ "$this" -ge 2 ] && exit "$this"   # an error or Ctrl-C, not a missed target
      status=$(( status > this ? status : this ))
      echo
    done
    exit "$status" ;;
esac
