#!/usr/bin/env bash
# The QUIC benchmark (parley_bench_quic) on both TLS backends, one after the other in one run:
# handshakes per second and DATAGRAMs per second, each against the same run's UDP reference.
#   bench/tls_backends_bench.sh [runs]   (default 3 runs per backend, medians reported)
# Builds build-release (GnuTLS) and build-bench-boringssl (-DPARLEY_TLS=boringssl) as needed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
./scripts/build release parley_bench_quic >/dev/null
cmake -S . -B build-bench-boringssl "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPARLEY_TLS=boringssl -DPARLEY_BUILD_TESTS=OFF -DPARLEY_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-bench-boringssl --parallel "$(nproc)" --target parley_bench_quic >/dev/null

out=$(mktemp -d /tmp/parley-tls-bench-XXXXXX)
trap 'rm -rf "$out"' EXIT
for ((i = 1; i <= runs; ++i)); do  # interleaved, so drift in the machine hits both alike
  for b in gnutls boringssl; do
    dir=build-release; [ $b = boringssl ] && dir=build-bench-boringssl
    "$dir/bench/parley_bench_quic" >"$out/$b.$i"
  done
done

median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
field() {  # backend, row prefix, field number after the 40-column label
  for f in "$out/$1".*; do
    grep -F "$2" "$f" | sed -E 's/^.{40}//' | awk -v c="$3" '{ print $c }'
  done | median
}
echo "date $(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $runs runs per backend (medians)"
printf '%-34s %14s %14s %14s %10s\n' "" "UDP reference" "GnuTLS" "BoringSSL" "BSSL/GnuTLS"
for row in "sequential handshakes" "1100-byte datagrams"; do
  ref=$(field gnutls "$row" 1)
  g=$(field gnutls "$row" 3)
  b=$(field boringssl "$row" 3)
  unit=/s; [ "$row" = "1100-byte datagrams" ] && unit=pps
  printf '%-34s %10.0f %-3s %10.0f %-3s %10.0f %-3s %10.2f\n' "$row" "$ref" "$unit" "$g" "$unit" \
    "$b" "$unit" "$(awk -v b="$b" -v g="$g" 'BEGIN { print b / g }')"
done
for row in "handshake latency p50 (us)" "heap per idle connection (KiB)"; do
  label=${row% (*}
  col=3; [ "$label" = "heap per idle connection" ] && col=2
  g=$(field gnutls "$label" $col)
  b=$(field boringssl "$label" $col)
  printf '%-34s %14s %14s %14s %10.2f\n' "$row" "" "$g" "$b" "$(awk -v b="$b" -v g="$g" 'BEGIN { print b / g }')"
done
