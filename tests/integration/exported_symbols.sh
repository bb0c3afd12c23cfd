#!/usr/bin/env bash
# Fails if libparley.so exports any defined dynamic symbol not starting with parley_, or if
# its exported symbols differ from the reviewed list abi/parley.symbols (SOURCE_DIR, $2): a
# removed symbol breaks the ABI; an added one must be added to the list on purpose.
set -euo pipefail
lib=$1
list=${2:+$2/abi/parley.symbols}
syms=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//')
count=$(printf '%s\n' "$syms" | grep -c . || true)
bad=$(printf '%s\n' "$syms" | grep -v '^parley_' || true)
if [ -n "$bad" ]; then
  echo "libparley.so exports symbols outside the C API:"
  printf '%s\n' "$bad" | head -50
  exit 1
fi
if [ "$count" -lt 10 ]; then
  echo "only $count exported symbols: expected the whole C API"; exit 1
fi
if [ -n "$list" ]; then
  if ! diff -u "$list" <(printf '%s\n' "$syms" | sort); then
    echo "exported symbols differ from $list ('-' removed: ABI break; '+' added: add it)"
    exit 1
  fi
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
if [ "$soname" != "libparley.so.0" ]; then
  echo "SONAME is '$soname', expected libparley.so.0"; exit 1
fi
echo "ok: $count exported symbols, all parley_*; SONAME $soname"
