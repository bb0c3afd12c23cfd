#!/usr/bin/env bash
# The README's demo as a test: create an identity, show it again, verify its certificate,
# and check that the tool refuses to overwrite or to read a too-open seed file.
set -euo pipefail
bin=$1
work=$(mktemp -d /tmp/parley-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
seed=$work/me.seed

fp=$("$bin" new "$seed")
[[ "$fp" =~ ^[0-9a-f]{64}$ ]] || { echo "bad fingerprint: $fp"; exit 1; }
[ "$(stat -c %a "$seed")" = 600 ] || { echo "seed mode is $(stat -c %a "$seed")"; exit 1; }
[ "$("$bin" show "$seed")" = "$fp" ] || { echo "show disagrees"; exit 1; }
cert=$("$bin" cert "$seed")
grep -q "fingerprint $fp" <<<"$cert" || { echo "certificate disagrees: $cert"; exit 1; }

before=$(sha256sum "$seed")
if "$bin" new "$seed" 2>"$work/err"; then echo "overwrote an existing seed"; exit 1; fi
grep -q "already exists" "$work/err" || { cat "$work/err"; exit 1; }
[ "$(sha256sum "$seed")" = "$before" ] || { echo "existing seed modified"; exit 1; }

chmod 644 "$seed"
if "$bin" show "$seed" 2>"$work/err"; then echo "read a world-readable seed"; exit 1; fi
grep -q "chmod 600" "$work/err" || { cat "$work/err"; exit 1; }
[ "$(stat -c %a "$seed")" = 644 ] || { echo "tool changed the mode"; exit 1; }
echo "ok: identity demo ($fp)"
