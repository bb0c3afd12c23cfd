#!/usr/bin/env bash
# bench/relay_vs_coturn.sh [bench options...]: builds parley-relay and parley_bench_relay in the
# release configuration (build-release/, or $PARLEY_BENCH_BUILD) and runs the relay forwarding
# bench against coturn (docs/performance.md, "Relay forwarding vs coturn"). Options go to
# parley_bench_relay (--steps, --seconds, --server-core, --no-coturn, ...; --help lists them).
#
# The bench pins the server to one core and loads it from the others; anything else running
# meanwhile skews it, so this refuses to start while the machine is busy (load average above
# 0.5 per core) unless PARLEY_BENCH_FORCE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PARLEY_BENCH_BUILD:-build-release}

for tool in turnserver turnutils_uclient taskset; do
  if ! command -v "$tool" >/dev/null; then
    echo "relay_vs_coturn: $tool is missing (scripts/setup-deps installs coturn)" >&2
    exit 1
  fi
done
if [ "$(nproc)" -lt 2 ]; then
  echo "relay_vs_coturn: needs at least 2 cores (one for the server, one for the load)" >&2
  exit 1
fi

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_WERROR=ON >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target parley-relay parley_bench_relay

load=$(cut -d' ' -f1 /proc/loadavg)
if [ "${PARLEY_BENCH_FORCE:-0}" != 1 ] &&
   awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
  echo "relay_vs_coturn: load average $load on $(nproc) cores: wait for a quiet machine" \
       "(or set PARLEY_BENCH_FORCE=1)" >&2
  exit 1
fi
exec "$build/bench/parley_bench_relay" "$@"
