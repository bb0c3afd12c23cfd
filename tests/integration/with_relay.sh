#!/usr/bin/env bash
# Starts parley-relay on 127.0.0.1 (any port, a scratch seed), waits for the two lines it
# prints once serving, then runs COMMAND... with RELAY_ADDRESS and RELAY_FINGERPRINT in its
# environment and "{relay}" / "{fingerprint}" in its arguments replaced. Exits with the
# command's status; the relay is killed either way.
#   with_relay.sh PARLEY_RELAY COMMAND [ARG...]
set -euo pipefail
relay=$1
shift
work=$(mktemp -d /tmp/parley-with-relay-XXXXXX)
mkfifo "$work/out"
"$relay" --listen 127.0.0.1:0 --stun-alt none --http3 off --log-level warn \
  --seed "$work/relay.seed" >"$work/out" 2>"$work/relay.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
exec 3<"$work/out"
fp="" addr=""
deadline=$((SECONDS + 10))
while [ -z "$addr" ] && [ $SECONDS -lt $deadline ]; do
  if IFS= read -r -t 10 line <&3; then
    case $line in
      "fingerprint "*) fp=${line#fingerprint } ;;
      "listening quic+stun "*) addr=${line#listening quic+stun }; addr=${addr%% *} ;;
    esac
  else
    break
  fi
done
if [ -z "$addr" ] || [ ${#fp} -ne 64 ]; then
  echo "parley-relay did not start:"; cat "$work/relay.log"; exit 1
fi
args=()
for a in "$@"; do a=${a//\{relay\}/$addr}; args+=("${a//\{fingerprint\}/$fp}"); done
set +e
RELAY_ADDRESS=$addr RELAY_FINGERPRINT=$fp "${args[@]}"
rc=$?
set -e
exit $rc
