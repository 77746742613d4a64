#!/usr/bin/env bash
# Stops the local Cassandra started by scripts/cassandra/start.sh.
#
# Usage: scripts/cassandra/stop.sh [--wipe] [--all]
#   --wipe  also delete the instance's data and logs (the node is killed at once: no drain needed,
#           except on the run that records the AppCDS class archive, which must exit normally)
#   --all   stop every instance under .cache/cassandra/ (default: the instance of SB_CASSANDRA_PORT)
#
# Environment: SB_CASSANDRA_PORT (default 9042), SB_CASSANDRA_INSTANCE (default node-<port>),
#   SB_CASSANDRA_STOP_TIMEOUT seconds to wait after SIGTERM before SIGKILL (default 60).
# Exits 0 when the instance is not running.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CACHE=$ROOT/.cache/cassandra
PORT=${SB_CASSANDRA_PORT:-9042}
STOP_TIMEOUT=${SB_CASSANDRA_STOP_TIMEOUT:-60}

WIPE=0
ALL=0
for arg in "$@"; do
  case $arg in
    --wipe) WIPE=1 ;;
    --all) ALL=1 ;;
    -h | --help)
      sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "cassandra: unknown option $arg" >&2
      exit 2
      ;;
  esac
done

now() { echo "${EPOCHREALTIME/,/.}"; }
# kill -0 also succeeds for a zombie waiting to be reaped by init, and the main thread of a killed
# JVM turns zombie before its other threads have exited and closed the sockets: the process is
# gone only when it has no thread left that is not a zombie.
alive() {
  local task stat
  kill -0 "$1" 2>/dev/null || return 1
  for task in /proc/"$1"/task/*; do
    stat=$(cat "$task/stat" 2>/dev/null) || continue
    stat=${stat##*) }
    [[ ${stat:0:1} == Z ]] || return 0
  done
  return 1
}

stop_instance() {
  local instance=$1 home=$CACHE/$1 pid t deadline signal=TERM killed=0 cds_tmp="" cds_final=""
  local pid_file=$home/cassandra.pid
  if [[ -f $home/cds-pending ]]; then
    { read -r cds_tmp && read -r cds_final; } <"$home/cds-pending" || true
  fi
  if [[ -f $pid_file ]]; then
    pid=$(cat "$pid_file")
    # Only signal the process if it really is this instance's java (PIDs get reused).
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' '\n' <"/proc/$pid/cmdline" |
      grep -qxF -- "-Dcassandra.config=file://$home/conf/cassandra.yaml"; then
      # SIGTERM drains (flushes memtables); with --wipe the data is thrown away, so SIGKILL,
      # unless this run must write its class archive at exit.
      if ((WIPE)) && [[ -z $cds_tmp ]]; then signal=KILL; fi
      t=$(now)
      kill -s "$signal" "$pid" 2>/dev/null || true
      deadline=$((SECONDS + STOP_TIMEOUT))
      while alive "$pid"; do
        if ((SECONDS >= deadline)); then
          echo "cassandra[$instance]: pid $pid still alive after ${STOP_TIMEOUT} s, sending SIGKILL" >&2
          kill -s KILL "$pid" 2>/dev/null || true
          killed=1
          deadline=$((SECONDS + 10))
        fi
        sleep 0.1
      done
      echo "cassandra[$instance]: stopped pid $pid (SIG$signal) in $(awk -v a="$t" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s" >&2
    else
      echo "cassandra[$instance]: not running (stale pid file)" >&2
    fi
    rm -f "$pid_file"
    if [[ -n $cds_tmp && -s $cds_tmp ]] && ((!killed)); then
      mv -f "$cds_tmp" "$cds_final"
      echo "cassandra[$instance]: saved class archive $(basename "$cds_final") for faster starts" >&2
    fi
  else
    echo "cassandra[$instance]: not running" >&2
  fi
  [[ -n $cds_tmp ]] && rm -f "$cds_tmp" "$home/cds-pending"
  # The CPU group of its background threads (SB_CASSANDRA_BACKGROUND_CPU_SHARES), empty now.
  rmdir "/sys/fs/cgroup/cpu/switchboard-cassandra-$instance-background" 2>/dev/null || true
  if ((WIPE)); then
    rm -rf "$home/data" "$home/logs" "$home/tmp"
    echo "cassandra[$instance]: wiped data and logs" >&2
  fi
}

if ((ALL)); then
  shopt -s nullglob
  for dir in "$CACHE"/*/conf; do
    stop_instance "$(basename "$(dirname "$dir")")"
  done
else
  stop_instance "${SB_CASSANDRA_INSTANCE:-node-$PORT}"
fi
