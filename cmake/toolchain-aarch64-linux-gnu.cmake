# Cross-compiling parley for arm64 (aarch64) Linux on a Debian 12 amd64 host, against
# Debian's multiarch arm64 packages (scripts/setup-cross-arm64 installs them; scripts/cross-arm64
# uses this file):
#
#   cmake -S . -B build-arm64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake ...
#
# Libraries and headers: Debian multiarch, not a sysroot. The arm64 -dev packages install into
# /usr/lib/aarch64-linux-gnu and /usr/include (plus /usr/include/aarch64-linux-gnu), which the
# cross compiler searches by itself, and CMake's find_* search through
# CMAKE_LIBRARY_ARCHITECTURE (lib/aarch64-linux-gnu). /usr/aarch64-linux-gnu holds the cross
# toolchain's own libc/libstdc++ (the *-arm64-cross packages).
# Test binaries run under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR): ctest and
# gtest_discover_tests prefix every test executable with it, so no binfmt_misc is needed.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(PARLEY_CROSS_TRIPLET aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${PARLEY_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${PARLEY_CROSS_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${PARLEY_CROSS_TRIPLET})

# find_*: programs from the host; libraries, headers and CMake packages for the target. The
# root path is the cross toolchain's tree; BOTH (not ONLY) because Debian's multiarch packages
# live under / (in the triplet directories), which re-rooting under /usr/aarch64-linux-gnu
# would hide. The triplet directories keep amd64 libraries out of the search.
set(CMAKE_FIND_ROOT_PATH /usr/${PARLEY_CROSS_TRIPLET})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# pkg-config for the target: Debian's aarch64-linux-gnu-pkg-config (pkgconf:arm64; the aarch64
# personality reads /usr/lib/aarch64-linux-gnu/pkgconfig and /usr/share/pkgconfig only).
# Without it, the host's pkg-config limited to the same directories.
find_program(PARLEY_CROSS_PKG_CONFIG ${PARLEY_CROSS_TRIPLET}-pkg-config)
if(PARLEY_CROSS_PKG_CONFIG)
  set(PKG_CONFIG_EXECUTABLE ${PARLEY_CROSS_PKG_CONFIG} CACHE FILEPATH "pkg-config for the target")
else()
  set(ENV{PKG_CONFIG_LIBDIR}
      "/usr/lib/${PARLEY_CROSS_TRIPLET}/pkgconfig:/usr/share/pkgconfig")
endif()
# A host PKG_CONFIG_PATH would put amd64 .pc files first.
unset(ENV{PKG_CONFIG_PATH})

# Running target binaries: qemu-aarch64 (qemu-user), invoked explicitly.
# Its -L prefix is where it looks first for the ELF interpreter and every file the program
# opens by absolute path. With libc6:arm64 installed (every arm64 -dev package depends on it)
# the arm64 loader is at /lib/ld-linux-aarch64.so.1 and matches the arm64 libc.so.6 in
# /lib/aarch64-linux-gnu, so no -L is given: `-L /usr/aarch64-linux-gnu` would load the cross
# toolchain's ld.so (libc6-arm64-cross, a different glibc build) in front of libc6:arm64's
# libc.so.6, the one the dynamic linker then finds through /etc/ld.so.cache. Only without
# libc6:arm64 (the cross toolchain alone) is -L /usr/aarch64-linux-gnu used.
find_program(PARLEY_QEMU_AARCH64 qemu-aarch64)
if(NOT PARLEY_QEMU_AARCH64)
  message(FATAL_ERROR "qemu-aarch64 not found: run scripts/setup-cross-arm64 (Debian: qemu-user)")
endif()
if(EXISTS /lib/ld-linux-aarch64.so.1)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PARLEY_QEMU_AARCH64})
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR ${PARLEY_QEMU_AARCH64} -L /usr/${PARLEY_CROSS_TRIPLET})
endif()
