#!/usr/bin/env bash
# Stops the Redis started by scripts/redis/start.sh (SIGTERM, SIGKILL after a timeout).
# Usage: scripts/redis/stop.sh   Environment: SB_REDIS_PORT (default 6390), SB_REDIS_STOP_TIMEOUT (10)
# Exits 0 when it is not running.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
PORT=${SB_REDIS_PORT:-6390}
STOP_TIMEOUT=${SB_REDIS_STOP_TIMEOUT:-10}
HOME_DIR=$ROOT/.cache/redis/$PORT
PID_FILE=$HOME_DIR/redis.pid

if [[ ! -f $PID_FILE ]]; then
  echo "redis[$PORT]: not running" >&2
  exit 0
fi
pid=$(cat "$PID_FILE")
if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "redis-server 127.0.0.1:$PORT"; then
  kill -s TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do
    if ((SECONDS >= deadline)); then
      kill -s KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 5))
    fi
    sleep 0.05
  done
  echo "redis[$PORT]: stopped pid $pid" >&2
else
  echo "redis[$PORT]: not running (stale pid file)" >&2
fi
rm -f "$PID_FILE"
