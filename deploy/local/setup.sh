#!/usr/bin/env bash
# Installs what regops and its tests need on a Debian machine (as root) and the Python
# package into ./.venv. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
for pair in redis-server:redis-server dockerd:docker.io docker-registry:docker-registry htpasswd:apache2-utils \
    docker-compose:docker-compose; do
  cmd=${pair%%:*}; pkg=${pair##*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/usr/bin/$cmd" ]; then
    need_apt+=("$pkg")
  fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install ${need_apt[*]} (apt-get)" >&2; exit 1
  fi
  echo "setup: installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
extras=${REGOPS_EXTRAS:-}
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
