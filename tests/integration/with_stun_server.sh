#!/usr/bin/env bash
# with_stun_server.sh STUN_SERVER_BIN COMMAND...: starts parley-stun-server on free loopback
# ports (127.0.0.1 primary, 127.0.0.2 alternate), waits for its "ready" line, runs COMMAND
# with the primary address appended, and stops the server whatever happens.
set -euo pipefail
server_bin=$1
shift
out=$(mktemp /tmp/parley-stun-XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -f "$out"; }
trap cleanup EXIT
for attempt in 1 2 3 4 5; do
  port=$(( 20000 + (RANDOM % 20000) * 2 ))
  "$server_bin" --listen "127.0.0.1:$port" --alt "127.0.0.2:$((port + 1))" >"$out" 2>&1 &
  pid=$!
  # Wait for "ready" (or an early exit, e.g. the port was taken) with a deadline.
  for _ in $(seq 100); do
    grep -q '^ready$' "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    read -rt 0.05 <> <(:) || true
  done
  grep -q '^ready$' "$out" && break
  wait "$pid" 2>/dev/null || true
  pid=
done
[ -n "$pid" ] || { echo "parley-stun-server did not start:"; cat "$out"; exit 1; }
"$@" "127.0.0.1:$port"
