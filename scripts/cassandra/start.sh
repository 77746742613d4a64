#!/usr/bin/env bash
# Starts a single-node Apache Cassandra 5.0 for development and tests, from Maven Central jars.
#
# Usage: scripts/cassandra/start.sh [--wipe] [--fetch-only]
#   --wipe        delete this instance's data (and logs) before starting
#   --fetch-only  only download the jars into .cache/cassandra/lib and exit
#
# Environment (all optional):
#   SB_CASSANDRA_PORT          CQL native port                      (default 9042)
#   SB_CASSANDRA_STORAGE_PORT  internode storage port               (default 7000)
#   SB_CASSANDRA_JMX_PORT      local-only JMX port; unset = no JMX  (default unset)
#   SB_CASSANDRA_INSTANCE      instance folder name under .cache/cassandra/ (default node-<port>)
#   SB_CASSANDRA_HEAP          -Xmx                                 (default 1G)
#   SB_CASSANDRA_HEAP_MIN      -Xms; kept small because Cassandra mlockall()s the committed heap
#                              at start-up, which costs ~3 s for 1G   (default 256M, at most HEAP)
#   SB_CASSANDRA_CDS           1 = use/create an AppCDS class archive in .cache/cassandra/cds to
#                              start ~1.5 s faster; 0 = off           (default 1)
#   SB_CASSANDRA_TIMEOUT       seconds to wait for CQL              (default 180)
#   SB_CASSANDRA_VERSION       cassandra-all version                (default 5.0.9)
#   SB_CASSANDRA_JVM_OPTS      extra JVM options, space separated
#   SB_CASSANDRA_TIMERSLACK_NS timer slack of the JVM's threads, in ns; 0 = the kernel's default
#                              (default 1000000). Cassandra's request pools wait for work in
#                              10 µs sleeps; on a small or virtualised machine each wake-up is
#                              costly, and under a steady trickle of requests they never stop.
#                              A 1 ms slack lets the kernel batch those wake-ups: Cassandra's CPU
#                              at 3,000 writes/s halves, for up to ~1 ms more per request
#                              (docs/LOCAL-SERVICES.md).
#   SB_CASSANDRA_NICE          CPU priority of Cassandra, 0 (as other processes) to 19 (only
#                              what they leave idle)                (default 0). Applies to every
#                              JVM thread and, where the kernel groups processes by session
#                              (autogroup), to Cassandra's session: started with setsid, it
#                              otherwise competes as one group against everything else. Lowers
#                              requests too; SB_CASSANDRA_BACKGROUND_CPU_SHARES lowers only the
#                              background work (docs/LOCAL-SERVICES.md).
#   SB_CASSANDRA_BACKGROUND_CPU_SHARES
#                              2 to 262144: put Cassandra's background threads (memtable flush,
#                              compaction, the JIT compilers) in a CPU cgroup of their own with this
#                              cpu.shares (a process at nice 0 has 1024), so they take the CPU that
#                              requests leave idle; empty = off (default). Needs the cgroup-v1 cpu
#                              controller writable at /sys/fs/cgroup/cpu; otherwise a notice, and
#                              nothing changes. Threads those pools start later inherit the group.
#                              For a host shared with latency-sensitive processes, as in the
#                              cluster bench (docs/LOCAL-SERVICES.md).
#   JAVA_HOME / JAVA           Java 17 to use                       (default: java on PATH)
#
# Idempotent: exits 0 at once when this instance is already running and answers CQL.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

VERSION=${SB_CASSANDRA_VERSION:-5.0.9}
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
PORT=${SB_CASSANDRA_PORT:-9042}
STORAGE_PORT=${SB_CASSANDRA_STORAGE_PORT:-7000}
JMX_PORT=${SB_CASSANDRA_JMX_PORT:-}
INSTANCE=${SB_CASSANDRA_INSTANCE:-node-$PORT}
HEAP=${SB_CASSANDRA_HEAP:-1G}
HEAP_MIN=${SB_CASSANDRA_HEAP_MIN:-256M}
CDS=${SB_CASSANDRA_CDS:-1}
TIMERSLACK_NS=${SB_CASSANDRA_TIMERSLACK_NS:-1000000}
NICE=${SB_CASSANDRA_NICE:-0}
BG_SHARES=${SB_CASSANDRA_BACKGROUND_CPU_SHARES:-}
TIMEOUT=${SB_CASSANDRA_TIMEOUT:-180}
CLUSTER_NAME=switchboard-local

CACHE=$ROOT/.cache/cassandra
LIB_DIR=$CACHE/lib
MARKER=$LIB_DIR/.complete
HOME_DIR=$CACHE/$INSTANCE
CONF_DIR=$HOME_DIR/conf
DATA_DIR=$HOME_DIR/data
LOG_DIR=$HOME_DIR/logs
TMP_DIR=$HOME_DIR/tmp
PID_FILE=$HOME_DIR/cassandra.pid
CDS_DIR=$CACHE/cds

WIPE=0
FETCH_ONLY=0
for arg in "$@"; do
  case $arg in
    --wipe) WIPE=1 ;;
    --fetch-only) FETCH_ONLY=1 ;;
    -h | --help)
      sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "cassandra: unknown option $arg" >&2
      exit 2
      ;;
  esac
done

log() { echo "cassandra[$INSTANCE]: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

T0=$(now)
JAVA=${JAVA:-${JAVA_HOME:+$JAVA_HOME/bin/java}}
JAVA=${JAVA:-java}

for p in "$PORT" "$STORAGE_PORT" ${JMX_PORT:+"$JMX_PORT"}; do
  [[ $p =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)) || die "invalid port '$p'"
done
[[ $INSTANCE =~ ^[A-Za-z0-9._-]+$ ]] || die "invalid instance name '$INSTANCE'"
[[ $TIMERSLACK_NS =~ ^[0-9]{1,10}$ ]] || die "invalid SB_CASSANDRA_TIMERSLACK_NS '$TIMERSLACK_NS' (nanoseconds, e.g. 1000000; 0 = kernel default)"
[[ $NICE =~ ^[0-9]{1,2}$ ]] && ((NICE <= 19)) || die "invalid SB_CASSANDRA_NICE '$NICE' (0 to 19)"
[[ -z $BG_SHARES ]] || { [[ $BG_SHARES =~ ^[0-9]{1,6}$ ]] && ((BG_SHARES >= 2 && BG_SHARES <= 262144)); } ||
  die "invalid SB_CASSANDRA_BACKGROUND_CPU_SHARES '$BG_SHARES' (2 to 262144, or empty)"
# Sizes like 512M / 1G / 1024m -> MiB.
to_mib() {
  [[ $1 =~ ^([0-9]+)([kKmMgG])$ ]] || die "invalid heap size '$1' (use e.g. 512M or 1G)"
  case ${BASH_REMATCH[2]} in
    k | K) echo $((BASH_REMATCH[1] / 1024)) ;;
    m | M) echo "${BASH_REMATCH[1]}" ;;
    g | G) echo $((BASH_REMATCH[1] * 1024)) ;;
  esac
}
(($(to_mib "$HEAP_MIN") <= $(to_mib "$HEAP"))) || HEAP_MIN=$HEAP

mkdir -p "$CACHE"

# ---------------------------------------------------------------------------------------------
# 1. Jars: cassandra-all and its runtime dependencies, copied from Maven Central once.
# ---------------------------------------------------------------------------------------------
fetch_jars() {
  if [[ -f $MARKER && $(cat "$MARKER") == "cassandra-all $VERSION" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
  local t fetch_dir tmp_lib
  t=$(now)
  fetch_dir=$CACHE/fetch
  tmp_lib=$CACHE/lib.tmp
  rm -rf "$fetch_dir" "$tmp_lib"
  mkdir -p "$fetch_dir"
  sed "s/@CASSANDRA_VERSION@/$VERSION/" "$SCRIPT_DIR/pom.xml" >"$fetch_dir/pom.xml"
  log "fetching cassandra-all $VERSION and its runtime dependencies from Maven Central..."
  if ! (cd "$fetch_dir" && mvn -B -q -Dstyle.color=never "$DEP_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="$tmp_lib" >"$fetch_dir/mvn.log" 2>&1); then
    tail -n 30 "$fetch_dir/mvn.log" >&2
    die "Maven could not fetch cassandra-all $VERSION (full log: $fetch_dir/mvn.log)"
  fi
  [[ -f $tmp_lib/cassandra-all-$VERSION.jar ]] || die "cassandra-all-$VERSION.jar missing after fetch"
  ls "$tmp_lib"/jamm-*.jar >/dev/null 2>&1 || die "jamm jar missing after fetch"
  rm -rf "$LIB_DIR"
  mv "$tmp_lib" "$LIB_DIR"
  echo "cassandra-all $VERSION" >"$MARKER"
  rm -rf "$fetch_dir"
  log "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $(elapsed "$t") s"
}

# The lock serialises concurrent start/fetch calls (e.g. several test workers).
exec 9>"$CACHE/.lock-fetch"
flock 9
fetch_jars
flock -u 9
((FETCH_ONLY)) && exit 0

# ---------------------------------------------------------------------------------------------
# 2. Already running?
# ---------------------------------------------------------------------------------------------
mkdir -p "$HOME_DIR"
exec 8>"$HOME_DIR/.lock"
flock 8

cql_ready() { timeout 5 bash "$SCRIPT_DIR/cql-ping.sh" 127.0.0.1 "$PORT" 2>/dev/null; }
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# True when $1 is a live java process started for this instance (guards against reused PIDs).
is_ours() {
  [[ -n $1 && -r /proc/$1/cmdline ]] && tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF -- "-Dcassandra.config=file://$CONF_DIR/cassandra.yaml"
}

wait_ready() {
  local pid=$1 t=$2 version
  while true; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local rc=unknown
      if wait "$pid" 2>/dev/null; then rc=0; else rc=$?; fi
      rm -f "$PID_FILE"
      log "process $pid exited during start-up. Last lines of $LOG_DIR/system.log and stdout.log:"
      tail -n 40 "$LOG_DIR/system.log" >&2 2>/dev/null || true
      tail -n 20 "$LOG_DIR/stdout.log" >&2 2>/dev/null || true
      die "Cassandra did not start (exit status: $rc); logs in $LOG_DIR"
    fi
    if version=$(cql_ready); then
      echo "cassandra[$INSTANCE]: Cassandra $version ready on 127.0.0.1:$PORT (pid $pid) in $(elapsed "$t") s" >&2
      return 0
    fi
    if awk -v a="$t" -v b="$(now)" -v m="$TIMEOUT" 'BEGIN { exit !(b - a > m) }'; then
      log "not answering CQL after ${TIMEOUT} s. Last lines of $LOG_DIR/system.log:"
      tail -n 40 "$LOG_DIR/system.log" >&2 2>/dev/null || true
      die "timeout waiting for CQL on 127.0.0.1:$PORT (pid $pid still running; stop it with scripts/cassandra/stop.sh)"
    fi
    sleep 0.5
  done
}

# Threads of Cassandra 5.0's background pools and of the JVM's JIT compilers, by the kernel's name
# for them (15 characters). Flush and compaction threads are started later by threads of these
# pools and inherit their CPU group.
BACKGROUND_THREADS='^(NativePoolClean|MemtableFlushWr|PerDiskMemtable|MemtablePostFlu|MemtableReclaim|CompactionExecu|C[12] CompilerThre)'

# Moves the background threads of process $1 into this instance's CPU group (see BG_SHARES).
background_group() {
  local pid=$1 root=/sys/fs/cgroup/cpu group task name moved=0
  group=$root/switchboard-cassandra-$INSTANCE-background
  if [[ ! -w $root/tasks ]] || ! { mkdir -p "$group" && echo "$BG_SHARES" >"$group/cpu.shares"; } 2>/dev/null; then
    log "notice: no writable cgroup-v1 cpu controller at $root; background threads keep the default share"
    return 0
  fi
  for task in /proc/"$pid"/task/*; do
    read -r name <"$task/comm" 2>/dev/null || continue
    if [[ $name =~ $BACKGROUND_THREADS ]] && echo "${task##*/}" >"$group/tasks" 2>/dev/null; then
      moved=$((moved + 1))
    fi
  done
  log "$moved background threads in $group (cpu.shares $BG_SHARES)"
}

if [[ -f $PID_FILE ]]; then
  pid=$(cat "$PID_FILE")
  if is_ours "$pid"; then
    if ((WIPE)); then
      die "instance is running (pid $pid): stop it before --wipe (scripts/cassandra/stop.sh --wipe)"
    fi
    if version=$(cql_ready); then
      log "already running: Cassandra $version on 127.0.0.1:$PORT (pid $pid)"
      exit 0
    fi
    log "already starting (pid $pid), waiting for CQL..."
    wait_ready "$pid" "$T0"
    exit 0
  fi
  log "removing stale pid file (pid $pid is not running)"
  rm -f "$PID_FILE"
fi

for p in "$PORT" "$STORAGE_PORT" ${JMX_PORT:+"$JMX_PORT"}; do
  if port_open "$p"; then
    die "port $p on 127.0.0.1 is already in use by another process (not instance $INSTANCE). Choose other ports with SB_CASSANDRA_PORT / SB_CASSANDRA_STORAGE_PORT."
  fi
done

# ---------------------------------------------------------------------------------------------
# 3. Java, configuration, directories.
# ---------------------------------------------------------------------------------------------
command -v "$JAVA" >/dev/null || die "java not found (apt-get install -y openjdk-17-jre-headless, or set JAVA_HOME)"
java_props=$("$JAVA" -XshowSettings:properties -version 2>&1)
java_major=$(awk -F'= ' '/java.specification.version/ { print $2 }' <<<"$java_props")
java_build=$(awk -F'= ' '/java.vm.version/ { print $2 }' <<<"$java_props" | tr -c 'A-Za-z0-9.\n' '_')
case $java_major in
  11 | 17) ;;
  *) die "Cassandra 5.0 needs Java 11 or 17; $JAVA is Java $java_major (set JAVA_HOME)" ;;
esac

if ((WIPE)); then
  log "wiping $DATA_DIR and $LOG_DIR"
  rm -rf "$DATA_DIR" "$LOG_DIR" "$TMP_DIR"
fi
mkdir -p "$CONF_DIR/triggers" "$DATA_DIR"/{data,commitlog,hints,saved_caches,cdc_raw} "$LOG_DIR" "$TMP_DIR"

render() {
  sed -e "s|@PORT@|$PORT|g" -e "s|@STORAGE_PORT@|$STORAGE_PORT|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
    -e "s|@CLUSTER_NAME@|$CLUSTER_NAME|g" -e "s|@HEAP@|$HEAP|g" -e "s|@HEAP_MIN@|$HEAP_MIN|g" -e "s|@LIB_DIR@|$LIB_DIR|g" \
    -e "s|@CONF_DIR@|$CONF_DIR|g" -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@TMP_DIR@|$TMP_DIR|g" "$1"
}
render "$SCRIPT_DIR/cassandra.yaml.in" >"$CONF_DIR/cassandra.yaml"
render "$SCRIPT_DIR/logback.xml" >"$CONF_DIR/logback.xml"
render "$SCRIPT_DIR/jvm.options" >"$CONF_DIR/jvm.options"

mapfile -t jvm_opts < <(grep -vE '^\s*(#|$)' "$CONF_DIR/jvm.options")
if [[ -n $JMX_PORT ]]; then
  jvm_opts+=("-Dcassandra.jmx.local.port=$JMX_PORT")
fi

# AppCDS: the first run records the loaded classes into an archive when the JVM exits normally
# (stop.sh sends SIGTERM to such a run and publishes the archive); later runs map it. A damaged
# archive crashes the JVM, so an archive is only used after a quick -Xshare:on check.
rm -f "$HOME_DIR/cds-pending"
if ((CDS)); then
  cds_archive=$CDS_DIR/cassandra-$VERSION-jdk-$java_build.jsa
  jvm_opts+=(-XX:+UnlockDiagnosticVMOptions -XX:+AllowArchivingWithJavaAgent -Xlog:cds=off -Xlog:cds+dynamic=off)
  if [[ -f $cds_archive ]] && ! "$JAVA" -XX:+UnlockDiagnosticVMOptions -XX:+AllowArchivingWithJavaAgent \
    "-javaagent:$LIB_DIR/jamm-0.4.0.jar" "-XX:SharedArchiveFile=$cds_archive" -Xshare:on -cp "$LIB_DIR/*" \
    -version >/dev/null 2>&1; then
    log "discarding unusable class archive $cds_archive"
    rm -f "$cds_archive"
  fi
  if [[ -f $cds_archive ]]; then
    jvm_opts+=("-XX:SharedArchiveFile=$cds_archive")
  else
    mkdir -p "$CDS_DIR"
    cds_tmp=$cds_archive.$INSTANCE.tmp
    rm -f "$cds_tmp"
    jvm_opts+=("-XX:ArchiveClassesAtExit=$cds_tmp")
    printf '%s\n%s\n' "$cds_tmp" "$cds_archive" >"$HOME_DIR/cds-pending"
  fi
fi
if [[ -n ${SB_CASSANDRA_JVM_OPTS:-} ]]; then
  read -r -a extra <<<"$SB_CASSANDRA_JVM_OPTS"
  jvm_opts+=("${extra[@]}")
fi

# ---------------------------------------------------------------------------------------------
# 4. Start, detached from this shell's session, logs to files; wait for CQL.
# ---------------------------------------------------------------------------------------------
log "starting Cassandra $VERSION (heap $HEAP_MIN..$HEAP, CQL 127.0.0.1:$PORT, storage port $STORAGE_PORT, nice $NICE, data $DATA_DIR)"
T1=$(now)
(
  exec 8>&- 9>&- # do not hand the lock files to the daemon
  cd "$HOME_DIR"
  # Inherited by every JVM thread (see TIMERSLACK_NS above).
  if [[ $TIMERSLACK_NS != 0 && -w /proc/self/timerslack_ns ]]; then echo "$TIMERSLACK_NS" >/proc/self/timerslack_ns; fi
  # Inherited by every JVM thread too (see NICE above).
  if ((NICE > 0)); then renice -n "$NICE" -p "$BASHPID" >/dev/null; fi
  exec setsid "$JAVA" "${jvm_opts[@]}" -cp "$LIB_DIR/*" org.apache.cassandra.service.CassandraDaemon \
    >>"$LOG_DIR/stdout.log" 2>&1 </dev/null
) &
pid=$!
echo "$pid" >"$PID_FILE"
if ((NICE > 0)); then
  # The session's scheduling group exists once setsid has run in the child: its own session id.
  for _ in $(seq 1 100); do
    sid=$(awk '{ sub(/^.*\) /, ""); print $4 }' "/proc/$pid/stat" 2>/dev/null || true)
    [[ $sid == "$pid" || -z $sid ]] && break
    sleep 0.02
  done
  if [[ $sid == "$pid" && -w /proc/$pid/autogroup ]]; then echo "$NICE" >"/proc/$pid/autogroup" 2>/dev/null || true; fi
fi
wait_ready "$pid" "$T1"
[[ -z $BG_SHARES ]] || background_group "$pid"
