# Platform calls parley uses where the platform has them, each with a portable path that is
# always correct: configure-time checks decide, never an #ifdef on the OS name, so a libc that
# grows or lacks a call (bionic by API level, musl, Darwin, Windows) gets the right path.
#
# PARLEY_FORCE_FALLBACKS compiles the portable paths on Linux too; otherwise nothing would
# ever build or test them here.
#
# Provides:
#   parley_portability   INTERFACE target carrying PARLEY_HAVE_<X>=0|1 (parley_base links it
#                        PUBLIC, so every layer sees them; use `#if`, and -Wundef catches a
#                        file that forgot them)
#   PARLEY_LINKER_*      which GNU-ld-style flags the linker accepts (TRUE/FALSE)

include(CheckCXXSourceCompiles)
include(CheckCXXSymbolExists)
include(CheckLinkerFlag)
include(CMakePushCheckState)

option(PARLEY_FORCE_FALLBACKS
  "Use the portable fallbacks even where Linux-only calls exist (no sendmmsg/recvmmsg, \
SOCK_CLOEXEC, renameat2 or eventfd), so CI builds and tests them" OFF)

cmake_push_check_state(RESET)
set(CMAKE_REQUIRED_QUIET ON)
# As C++, like the code that uses them: g++ defines _GNU_SOURCE, under which glibc declares
# the mmsg calls and renameat2. The checks link, so a declared but missing symbol (bionic
# below the API level that added it) counts as absent.
check_cxx_symbol_exists(sendmmsg "sys/socket.h" PARLEY_SYSTEM_HAS_SENDMMSG)
check_cxx_symbol_exists(recvmmsg "sys/socket.h" PARLEY_SYSTEM_HAS_RECVMMSG)
check_cxx_symbol_exists(SOCK_CLOEXEC "sys/socket.h" PARLEY_SYSTEM_HAS_SOCK_CLOEXEC)
# The C API's event notification descriptor; a pipe elsewhere (Darwin, the BSDs).
check_cxx_symbol_exists(eventfd "sys/eventfd.h" PARLEY_SYSTEM_HAS_EVENTFD)
check_cxx_source_compiles([[
#include <fcntl.h>
#include <stdio.h>
int main() { return renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE); }
]] PARLEY_SYSTEM_HAS_RENAMEAT2)
cmake_pop_check_state()

add_library(parley_portability INTERFACE)
set(_parley_portability_summary "")
foreach(feature SENDMMSG RECVMMSG SOCK_CLOEXEC RENAMEAT2 EVENTFD)
  if(PARLEY_SYSTEM_HAS_${feature} AND NOT PARLEY_FORCE_FALLBACKS)
    set(PARLEY_HAVE_${feature} 1)
  else()
    set(PARLEY_HAVE_${feature} 0)
  endif()
  target_compile_definitions(parley_portability INTERFACE
    PARLEY_HAVE_${feature}=${PARLEY_HAVE_${feature}})
  if(PARLEY_SYSTEM_HAS_${feature})
    set(_parley_found "found")
  else()
    set(_parley_found "missing")
  endif()
  string(APPEND _parley_portability_summary
    " ${feature}=${PARLEY_HAVE_${feature}}(${_parley_found})")
endforeach()

# The shared library's link hardening and export list are GNU ld / gold / lld flags. Darwin's
# ld64 has none of them: there, hidden visibility plus PARLEY_API already limit the exports
# to the C API (ld64's -exported_symbols_list with abi/parley.symbols, '_'-prefixed, would be
# its version script), undefined symbols are an error by default, and its binaries need no
# RELRO. link.exe exports only what __declspec(dllexport) marks.
check_linker_flag(CXX "LINKER:--version-script=${PROJECT_SOURCE_DIR}/cmake/parley.map"
                  PARLEY_LINKER_VERSION_SCRIPT)
check_linker_flag(CXX "LINKER:--no-undefined" PARLEY_LINKER_NO_UNDEFINED)
check_linker_flag(CXX "LINKER:-z,relro,-z,now" PARLEY_LINKER_RELRO_NOW)
foreach(flag VERSION_SCRIPT NO_UNDEFINED RELRO_NOW)
  if(PARLEY_LINKER_${flag})
    string(APPEND _parley_portability_summary " LINKER_${flag}=1")
  else()
    string(APPEND _parley_portability_summary " LINKER_${flag}=0")
  endif()
endforeach()

message(STATUS "parley portability (PARLEY_FORCE_FALLBACKS=${PARLEY_FORCE_FALLBACKS}):"
               "${_parley_portability_summary}")
