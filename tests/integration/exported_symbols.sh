#!/usr/bin/env bash
# Fails if libparley.so exports any defined dynamic symbol not starting with parley_.
set -euo pipefail
lib=$1
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
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
if [ "$soname" != "libparley.so.0" ]; then
  echo "SONAME is '$soname', expected libparley.so.0"; exit 1
fi
echo "ok: $count exported symbols, all parley_*; SONAME $soname"
