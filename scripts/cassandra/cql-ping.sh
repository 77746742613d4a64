#!/usr/bin/env bash
# Usage: cql-ping.sh [host] [port]
# Speaks the CQL native protocol (v4) over bash's /dev/tcp: STARTUP, then
# "SELECT release_version FROM system.local". Prints the release version and exits 0 when the node
# answers queries; exits 1 otherwise. No cqlsh or driver needed. Callers should wrap it in `timeout`.
set -euo pipefail
host=${1:-127.0.0.1}
port=${2:-9042}

exec 3<>"/dev/tcp/$host/$port" || exit 1

# Reads one response frame from fd 3; sets OPCODE and writes the body (hex) to BODY_HEX.
read_frame() {
  local header len
  header=$(dd bs=9 count=1 iflag=fullblock status=none <&3 | od -An -v -tx1 | tr -d ' \n')
  [[ ${#header} -eq 18 ]] || return 1
  OPCODE=${header:8:2}
  len=$((16#${header:10:8}))
  BODY_HEX=""
  if ((len > 0)); then
    BODY_HEX=$(dd bs="$len" count=1 iflag=fullblock status=none <&3 | od -An -v -tx1 | tr -d ' \n')
  fi
}

# STARTUP {CQL_VERSION: 3.0.0}: version 0x04, flags 0, stream 1, opcode 0x01, body length 22.
printf '\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0' >&3
read_frame || exit 1
[[ $OPCODE == 02 ]] || exit 1 # READY

query='SELECT release_version FROM system.local'
qlen=${#query}
blen=$((4 + qlen + 2 + 1))
# QUERY: [long string] query, [short] consistency ONE, [byte] flags 0.
printf "\\x04\\x00\\x00\\x02\\x07$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' 0 0 0 "$blen")" >&3
printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' 0 0 0 "$qlen")%s\\x00\\x01\\x00" "$query" >&3
read_frame || exit 1
[[ $OPCODE == 08 ]] || exit 1 # RESULT

# The single text cell is the last [bytes] value of the rows body: print its printable tail.
# shellcheck disable=SC2059 # the format is the escaped bytes themselves
printf "$(sed 's/../\\x&/g' <<<"$BODY_HEX")" | tr -c '[:print:]' '\n' | grep -E '^[0-9]+\.[0-9]+' | tail -1 || echo ok
exec 3>&-
