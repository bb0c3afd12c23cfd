#!/usr/bin/env bash
# Installs the build into a scratch prefix, then builds examples/ out of tree against the
# installed library three ways (CMake package shared, CMake package static, pkg-config) and
# runs each binary.
set -euo pipefail
build=$1 src=$2 cc=$3
work=$(mktemp -d /tmp/parley-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build" --prefix "$prefix" >"$work/install.log"
test -f "$prefix/include/parley/parley.h"
ls "$prefix"/lib*/libparley.so.0 "$prefix"/lib*/libparley.a >/dev/null

check_demo() {  # binary, label
  local seed=$work/$2.seed out fp
  out=$("$1" new "$seed")
  fp=$("$1" show "$seed")
  [[ "$out" =~ ^[0-9a-f]{64}$ ]] || { echo "$2: bad fingerprint '$out'"; exit 1; }
  [ "$out" = "$fp" ] || { echo "$2: new/show disagree"; exit 1; }
  echo "ok: $2 build runs ($fp)"
}

for mode in shared static; do
  static=OFF; [ $mode = static ] && static=ON
  cmake -S "$src/examples" -B "$work/ex-$mode" -DCMAKE_PREFIX_PATH="$prefix" \
        -DPARLEY_EXAMPLES_STATIC=$static >"$work/cfg-$mode.log" 2>&1 \
    || { cat "$work/cfg-$mode.log"; exit 1; }
  cmake --build "$work/ex-$mode" >"$work/build-$mode.log" 2>&1 \
    || { cat "$work/build-$mode.log"; exit 1; }
  bin=$work/ex-$mode/parley-identity
  # Capture first: `ldd | grep -q` under pipefail fails whenever grep exits before ldd has
  # written everything (SIGPIPE) — an intermittent false failure.
  deps=$(ldd "$bin")
  if [ $mode = static ]; then
    if grep -q libparley <<<"$deps"; then echo "static build links libparley.so"; exit 1; fi
  else
    grep -q "libparley.so.0 => $prefix" <<<"$deps" \
      || { echo "shared build does not use the installed library"; echo "$deps"; exit 1; }
  fi
  check_demo "$bin" "cmake-$mode"
done

libdir=$(dirname "$(ls "$prefix"/lib*/libparley.so.0)")
export PKG_CONFIG_PATH=$libdir/pkgconfig
"$cc" -std=c99 -Wall -Werror $(pkg-config --cflags parley) "$src/examples/parley_identity.c" \
  -o "$work/pc-demo" $(pkg-config --libs parley) -Wl,-rpath,"$libdir"
check_demo "$work/pc-demo" pkg-config
