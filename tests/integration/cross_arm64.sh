#!/usr/bin/env bash
# The arm64 cross build and its unit tests under qemu-user (scripts/cross-arm64), when this
# machine has the cross tools; otherwise a skip (exit 77) that says how to get them. Not
# installed by scripts/setup-deps: the cross build is ~5-8 minutes on two cores, more than
# test-all's budget (docs/building.md, "arm64").
set -uo pipefail
src=$1
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(crossbuild-essential-arm64)
[ -e /usr/lib/aarch64-linux-gnu/pkgconfig/libsodium.pc ] || missing+=("the arm64 libraries")
if [ ${#missing[@]} -gt 0 ]; then
  echo "skipped: no arm64 cross tools (${missing[*]}); scripts/setup-cross-arm64 installs them"
  exit 77
fi
exec "$src/scripts/cross-arm64"
