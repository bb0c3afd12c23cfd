#!/usr/bin/env bash
# bench/voice_cpu_bench.sh [--rate HZ] [--short N] [--long N] [--wall N] [--markdown]:
# the CPU cost of parley's voice pipeline per 20 ms of audio, against libopus alone
# (docs/performance.md, "Voice pipeline").
#
# For every profile (parley_voice_sim --list-profiles), parley_voice_sim runs in two modes:
#  - pipeline: VoiceSender -> FrameSealer -> (simulated network, no loss) -> FrameOpener ->
#    VoiceReceiver pulled in 10 ms chunks: everything parley does per frame on both ends of
#    one call direction;
#  - reference (--reference): VoiceEncoder::encode -> VoiceDecoder::decode only (libopus
#    through parley's thin wrappers), the same profile.
# Instructions: valgrind --tool=callgrind, for --short and --long frames (default 100 and 600),
# Ir per 20 ms of audio = (Ir(long) - Ir(short)) / ((long - short) x frame_ms / 20): the
# difference removes start-up (process, WAV, codec and key set-up).
# Wall time: the same difference natively (no valgrind), --wall frames (default 3000) against
# --short, best of 3 runs each; "RTF" is processing time / audio time on one core.
#
# Input: speech synthesised with espeak-ng + sox at --rate (default 48000, the C API's default
# rate), looped. Builds parley_voice_sim in build-release/ (or $PARLEY_BENCH_BUILD) first.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PARLEY_BENCH_BUILD:-build-release}
rate=48000 short=100 long=600 wall=3000 markdown=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --short) short=$2; shift 2 ;;
    --long) long=$2; shift 2 ;;
    --wall) wall=$2; shift 2 ;;
    --markdown) markdown=1; shift ;;
    *) echo "usage: bench/voice_cpu_bench.sh [--rate HZ] [--short N] [--long N] [--wall N]" \
            "[--markdown]" >&2; exit 2 ;;
  esac
done
for tool in valgrind espeak-ng sox; do
  command -v "$tool" >/dev/null ||
    { echo "voice_cpu_bench: $tool missing (scripts/setup-deps installs it)" >&2; exit 1; }
done

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_WERROR=ON >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target parley_voice_sim >/dev/null
sim=$build/bench/parley_voice_sim

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
speech="The quick brown fox jumps over the lazy dog. Parley carries this sentence from one \
end of the call to the other. Every word should arrive once, in order, and on time."
espeak-ng -v en -s 150 -w "$tmp/raw.wav" "$speech" >/dev/null
sox "$tmp/raw.wav" -r "$rate" -c 1 -b 16 "$tmp/in.wav" gain -3 pad 0.5 0.5

# Ir of one run: the "totals:" (or "summary:") line of the callgrind output file.
ir() {
  local out=$tmp/cg.out
  rm -f "$out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$sim" --in "$tmp/in.wav" \
    --frames-only "$@" >/dev/null 2>"$tmp/vg.log" ||
    { cat "$tmp/vg.log" >&2; exit 1; }
  awk '/^totals:/ { t = $2 } /^summary:/ { s = $2 } END { print (t != "" ? t : s) }' "$out"
}
# Best-of-3 wall time of one native run, in ns.
wall_ns() {
  local best=0 i t0 t1
  for i in 1 2 3; do
    t0=$(date +%s%N)
    "$sim" --in "$tmp/in.wav" --frames-only "$@" >/dev/null
    t1=$(date +%s%N)
    if [ "$best" -eq 0 ] || [ $((t1 - t0)) -lt "$best" ]; then best=$((t1 - t0)); fi
  done
  echo "$best"
}

echo "# $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# input: espeak-ng speech at $rate Hz, $(soxi -D "$tmp/in.wav") s, looped; Ir frames $short/$long, wall frames $short/$wall"
if [ "$markdown" = 1 ]; then
  echo "| profile | frame | pipeline Ir/20 ms | libopus alone Ir/20 ms | ratio | pipeline wall µs/20 ms | libopus wall µs/20 ms | pipeline RTF |"
  echo "|---|---|---|---|---|---|---|---|"
else
  printf "%-18s %6s %18s %18s %6s %12s %12s %9s\n" profile frame_ms "pipeline Ir/20ms" \
    "libopus Ir/20ms" ratio "pipe us/20ms" "opus us/20ms" "pipe RTF"
fi
while read -r id name frame_ms _; do
  audio20=$(( (long - short) * frame_ms ))  # x 1/20: per 20 ms below
  p_short=$(ir "$short" --profile "$id")
  p_long=$(ir "$long" --profile "$id")
  r_short=$(ir "$short" --profile "$id" --reference)
  r_long=$(ir "$long" --profile "$id" --reference)
  pw_short=$(wall_ns "$short" --profile "$id")
  pw_long=$(wall_ns "$wall" --profile "$id")
  rw_short=$(wall_ns "$short" --profile "$id" --reference)
  rw_long=$(wall_ns "$wall" --profile "$id" --reference)
  awk -v id="$id" -v name="$name" -v fm="$frame_ms" -v a20="$audio20" -v md="$markdown" \
      -v ps="$p_short" -v pl="$p_long" -v rs="$r_short" -v rl="$r_long" \
      -v pws="$pw_short" -v pwl="$pw_long" -v rws="$rw_short" -v rwl="$rw_long" \
      -v short="$short" -v wall="$wall" 'BEGIN {
    p = (pl - ps) * 20 / a20; r = (rl - rs) * 20 / a20
    w20 = (wall - short) * fm / 20
    pw = (pwl - pws) / 1000 / w20; rw = (rwl - rws) / 1000 / w20
    if (md == 1)
      printf "| %s %s | %d ms | %.0f | %.0f | %.2f | %.0f | %.0f | %.4f |\n", id, name, fm, p, r, p / r, pw, rw, pw / 20000
    else
      printf "%-18s %6d %18.0f %18.0f %6.2f %12.0f %12.0f %9.4f\n", id " " name, fm, p, r, p / r, pw, rw, pw / 20000
  }'
done < <("$sim" --list-profiles)
