#!/usr/bin/env bash
# Builds and tests the Swift binding against an in-tree libparley, then runs the example.
#
#   run-tests.sh <include dir> <lib dir> <parley-relay binary> <scratch dir>
#
# Everything SwiftPM writes goes to <scratch dir> (nothing into the source tree). Exits 77
# (ctest: skipped) when no Swift toolchain is found: `swift` on PATH, else /opt/swift/usr/bin.
# With PARLEY_SWIFT_WERROR=1 compiler warnings are errors.
set -euo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 <include dir> <lib dir> <parley-relay binary> <scratch dir>" >&2
  exit 2
fi
include_dir=$1
lib_dir=$2
relay=$3
scratch=$4
package_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# A `swift` that is not the Swift toolchain (e.g. OpenStack's client) does not count.
is_toolchain() { [ -x "$1" ] && "$1" --version 2>&1 | grep -q "Swift version"; }
swift=""
if command -v swift >/dev/null 2>&1 && is_toolchain "$(command -v swift)"; then
  swift=$(command -v swift)
elif is_toolchain /opt/swift/usr/bin/swift; then
  swift=/opt/swift/usr/bin/swift
  export PATH="/opt/swift/usr/bin:$PATH"
fi
if [ -z "$swift" ]; then
  # Debian 12 does not package Swift, so scripts/setup-deps cannot install it.
  echo "bindings.swift: skipped: no Swift toolchain (looked for swift on PATH and" \
       "/opt/swift/usr/bin/swift). Debian 12 has no Swift package: unpack the Swift 5.9+" \
       "toolchain for Debian 12 (the release tarball from swift.org) in /opt/swift, or put" \
       "its usr/bin on PATH, then re-run ctest." >&2
  exit 77
fi
for f in "$include_dir/parley/parley.h" "$relay"; do
  [ -e "$f" ] || { echo "bindings/swift: $f does not exist" >&2; exit 1; }
done
"$swift" --version 2>&1 | head -n 1

mkdir -p "$scratch"
# A parley.pc for this build tree, so that SwiftPM's pkg-config look-up of the CParley module
# finds the in-tree library (an installed parley.pc works the same way for applications).
pcdir="$scratch/pkgconfig"
mkdir -p "$pcdir"
cat >"$pcdir/parley.pc" <<PC
Name: parley
Description: libparley (build tree, for the Swift binding's tests)
Version: 0.2.0
Cflags: -I$include_dir
Libs: -L$lib_dir -lparley
PC
export PKG_CONFIG_PATH="$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

flags=(--package-path "$package_dir" --scratch-path "$scratch"
       -Xcc "-I$include_dir" -Xlinker "-L$lib_dir" -Xlinker -rpath -Xlinker "$lib_dir")
# PARLEY_SWIFT_WERROR=1 (set by CMake with PARLEY_WERROR): warnings fail the build.
if [ "${PARLEY_SWIFT_WERROR:-0}" = 1 ]; then
  flags+=(-Xswiftc -warnings-as-errors)
fi

start=$(date +%s)
echo "== swift build"
"$swift" build "${flags[@]}" --build-tests
built=$(date +%s)
echo "== swift test (build took $((built - start)) s)"
PARLEY_RELAY="$relay" "$swift" test "${flags[@]}" --skip-build
tested=$(date +%s)
echo "== parley-swift-example (tests took $((tested - built)) s)"
bin=$("$swift" build "${flags[@]}" --show-bin-path)
"$bin/parley-swift-example" "$relay" 1
echo "== bindings/swift: passed in $(($(date +%s) - start)) s"
