#!/usr/bin/env bash
# Starts a throw-away Redis (Debian redis-server) for development and tests: bound to 127.0.0.1,
# no persistence, pid file and log under .cache/redis/<port>/.
#
# Usage: scripts/redis/start.sh
# Environment: SB_REDIS_PORT (default 6390), SB_REDIS_TIMEOUT seconds to wait for PONG (default 20),
#   SB_REDIS_MAXMEMORY (default 256mb).
# Idempotent: exits 0 at once when this instance already answers PING.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
PORT=${SB_REDIS_PORT:-6390}
TIMEOUT=${SB_REDIS_TIMEOUT:-20}
MAXMEMORY=${SB_REDIS_MAXMEMORY:-256mb}
HOME_DIR=$ROOT/.cache/redis/$PORT
PID_FILE=$HOME_DIR/redis.pid
LOG_FILE=$HOME_DIR/redis.log

log() { echo "redis[$PORT]: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
[[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || die "invalid port '$PORT'"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "redis-server missing: installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; }
  else
    die "redis-server not found: sudo apt-get install -y redis-server"
  fi
fi

mkdir -p "$HOME_DIR"
exec 9>"$HOME_DIR/.lock"
flock 9

ping() { [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; }
is_ours() { [[ -n $1 && -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "redis-server 127.0.0.1:$PORT"; }

if [[ -f $PID_FILE ]]; then
  pid=$(cat "$PID_FILE")
  if is_ours "$pid" && ping; then
    log "already running (pid $pid)"
    exit 0
  fi
  is_ours "$pid" || rm -f "$PID_FILE"
fi
if ping; then
  die "port $PORT already answers PING but is not this instance (no pid file); choose another SB_REDIS_PORT"
fi

t0=${EPOCHREALTIME/,/.}
# --daemonize writes the pid file itself; --dir keeps any stray file (e.g. a manual SAVE) in .cache.
redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$PID_FILE" --logfile "$LOG_FILE" \
  --dir "$HOME_DIR" --save '' --appendonly no --protected-mode yes --maxmemory "$MAXMEMORY" \
  --maxmemory-policy noeviction --databases 16 9>&- || die "redis-server failed; see $LOG_FILE"

deadline=$((SECONDS + TIMEOUT))
until ping; do
  if ((SECONDS >= deadline)); then
    tail -n 20 "$LOG_FILE" >&2 || true
    die "no PONG after ${TIMEOUT} s (log: $LOG_FILE)"
  fi
  sleep 0.05
done
log "ready on 127.0.0.1:$PORT (pid $(cat "$PID_FILE" 2>/dev/null || echo '?')) in $(awk -v a="$t0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.2f", b - a }') s"
