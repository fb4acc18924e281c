#!/usr/bin/env bash
# One command from a fresh Debian machine (as root) to a working regops console:
# installs regops, starts a local Redis, Docker engine and registry (each only when absent),
# builds a sample image `centos7-elasticsearch:latest`, writes .local/regops.yaml and opens
# `regops shell`. Try:  push centos7-elasticsearch latest
# Arguments are passed to `regops shell` (e.g. `--user U0ADMIN`). Stop the services it started
# with: bash deploy/local/quickstart.sh --stop
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
STATE=$ROOT/.local
mkdir -p "$STATE"
REDIS_PORT=${REGOPS_REDIS_PORT:-6379}
REGISTRY_PORT=${REGOPS_REGISTRY_PORT:-5100}
DOCKER_SOCK=${REGOPS_DOCKER_SOCK:-/var/run/docker.sock}

say() { echo "quickstart: $*" >&2; }

stop_started() {
  for name in registry dockerd redis; do
    pidfile=$STATE/$name.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      say "stopping $name"; kill "$(cat "$pidfile")" || true
    fi
    rm -f "$pidfile"
  done
}
if [ "${1:-}" = "--stop" ]; then stop_started; exit 0; fi

bash deploy/local/setup.sh

wait_for() {  # wait_for WHAT SECONDS COMMAND...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  say "$what did not come up; see $STATE/$what.log"; exit 1
}

# Redis
if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  say "using the Redis already on port $REDIS_PORT"
else
  say "starting Redis on 127.0.0.1:$REDIS_PORT"
  mkdir -p "$STATE/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$STATE/redis" --appendonly yes \
    --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis.log"
  wait_for redis 15 redis-cli -p "$REDIS_PORT" ping
fi

# Docker engine
export DOCKER_HOST=unix://$DOCKER_SOCK
if docker version >/dev/null 2>&1; then
  say "using the Docker engine at $DOCKER_SOCK"
else
  say "starting a Docker engine at $DOCKER_SOCK"
  DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)
  # The exec root holds the engine's sockets: short (a socket path has ~100 characters at most) and
  # one per state folder, so two quick starts on one machine never share it.
  EXEC_ROOT=/run/regops-local-docker-$(printf '%s' "$STATE" | sha256sum | cut -c1-12)
  mkdir -p "$STATE/docker-data" "$EXEC_ROOT"
  nohup "$DOCKERD" --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root "$STATE/docker-data" --exec-root "$EXEC_ROOT" \
    -H "unix://$DOCKER_SOCK" --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
  wait_for dockerd 60 docker version
fi

# Registry with htpasswd auth
REGISTRY_USER=user001@namespace.example.com
if [ ! -s "$STATE/registry-password" ]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STATE/registry-password")
fi
if curl -s -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null \
   || (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null; then
  say "using the registry already on port $REGISTRY_PORT"
else
  say "starting a registry on 127.0.0.1:$REGISTRY_PORT (user $REGISTRY_USER)"
  mkdir -p "$STATE/registry-data"
  htpasswd -Bbn "$REGISTRY_USER" "$(cat "$STATE/registry-password")" > "$STATE/htpasswd"
  cat > "$STATE/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $STATE/registry-data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$REGISTRY_PORT
auth:
  htpasswd: {realm: regops-local, path: $STATE/htpasswd}
YAML
  nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
  echo $! > "$STATE/registry.pid"
  wait_for registry 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$REGISTRY_PORT"
fi

# A sample image to push
if ! docker image inspect centos7-elasticsearch:latest >/dev/null 2>&1; then
  say "building the sample image centos7-elasticsearch:latest"
  ctx=$(mktemp -d)
  head -c 2000000 /dev/urandom > "$ctx/elasticsearch.bin"
  printf 'regops sample image\n' > "$ctx/README"
  printf 'FROM scratch\nCOPY README /README\nCOPY elasticsearch.bin /opt/elasticsearch.bin\n' > "$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t centos7-elasticsearch:latest "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# The config
if [ ! -f "$STATE/regops.yaml" ]; then
  cat > "$STATE/regops.yaml" <<YAML
# Written by deploy/local/quickstart.sh for a local trial; see deploy/regops.example.yaml.
registries:
  local:
    server: 127.0.0.1:$REGISTRY_PORT
    services_hostname: namespace.example.com
    username: $REGISTRY_USER
    password_file: $STATE/registry-password
default_registry: local
hosts: [local]
default_host: local
access:
  roles:
    admin: {actions: ["*"]}
  grants:
    - {role: admin, users: [U0CONSOLE]}   # the user regops shell runs as by default
YAML
fi

export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export REGOPS_CONFIG=$STATE/regops.yaml
say "ready: type \`push centos7-elasticsearch latest\` (Ctrl-D to leave; --stop to stop the services)"
exec "$ROOT/.venv/bin/regops" shell --worker-log "$STATE/worker.log" "$@"
