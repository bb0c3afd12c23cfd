#!/usr/bin/env bash
# Compares libparley's ABI with the recorded baseline (abi/libparley.so.0.abi, written by
# scripts/abi-baseline) using abidw/abidiff from Debian's abigail-tools. The promise of
# docs/abi.md: new functions, appended enum values and struct fields appended at the end are
# compatible and pass; a removed function, a changed signature, a moved or retyped struct
# member, a renumbered or removed enum value fails.
set -euo pipefail
lib=$(readlink -f "$1")
src=$2
if ! command -v abidiff >/dev/null; then echo "abidiff not installed (abigail-tools)"; exit 1; fi
cur=$(mktemp /tmp/parley-abi-XXXXXX)
trap 'rm -f "$cur"' EXIT
abidw --exported-interfaces-only --headers-dir "$src/include/parley" --drop-private-types \
  --no-show-locs --no-corpus-path --out-file "$cur" "$lib"
set +e
out=$(abidiff --harmless "$src/abi/libparley.so.0.abi" "$cur" 2>&1)
rc=$?
set -e
printf '%s\n' "$out"
if (( rc & 3 )); then echo "abidiff failed to run (rc=$rc)"; exit 1; fi
# abidiff calls only removals incompatible (bit 8); layout changes behind a pointer it
# reports as plain changes, so the promise is checked on its report.
broken=$(printf '%s\n' "$out" | grep -E \
  "[1-9][0-9]* Removed|offset changed|type of '.*' changed|data member.*(deleted|removed)|\
enumerator.*(deleted|value changed)|[1-9][0-9]* enumerator deletion|parameter [0-9]+ of type .* was (added|removed)|\
return type changed|size of .* changed" || true)
if (( rc & 8 )) || [ -n "$broken" ]; then
  echo "INCOMPATIBLE ABI change against abi/libparley.so.0.abi:"
  printf '%s\n' "$broken"
  exit 1
fi
if (( rc & 4 )); then echo "ok: compatible ABI changes only (additions)"; else echo "ok: ABI identical to the baseline"; fi
