# Finds every third-party library parley uses, through pkg-config, and fails once with a
# message naming the Debian packages to install when anything is missing.
find_package(PkgConfig)
find_package(Threads REQUIRED)

# module name -> minimum version -> Debian package (bookworm / bookworm-backports)
set(_parley_deps
  "gnutls|3.7.0|libgnutls28-dev"
  "libsodium|1.0.18|libsodium-dev"
  "libuv|1.44.0|libuv1-dev"
  "opus|1.3|libopus-dev"
  "libngtcp2|1.11.0|libngtcp2-dev (bookworm-backports)"
  "libngtcp2_crypto_gnutls|1.11.0|libngtcp2-crypto-gnutls-dev (bookworm-backports)"
  "libnghttp3|1.8.0|libnghttp3-dev (bookworm-backports)"
  "miniupnpc|2.2|libminiupnpc-dev")

set(_missing "")
if(NOT PKG_CONFIG_FOUND)
  list(APPEND _missing "pkg-config")
endif()
set(PARLEY_PKGCONFIG_MODULES "")
foreach(_d IN LISTS _parley_deps)
  string(REPLACE "|" ";" _d "${_d}")
  list(GET _d 0 _mod)
  list(GET _d 1 _ver)
  list(GET _d 2 _pkg)
  string(TOUPPER "PARLEY_DEP_${_mod}" _var)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(${_var} QUIET IMPORTED_TARGET "${_mod}>=${_ver}")
  endif()
  if(NOT ${_var}_FOUND)
    list(APPEND _missing "${_pkg}")
  else()
    list(APPEND PARLEY_PKGCONFIG_MODULES "${_mod} >= ${_ver}")
  endif()
endforeach()

if(PARLEY_BUILD_TESTS)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    list(APPEND _missing "libgtest-dev libgmock-dev")
  endif()
endif()

if(_missing)
  list(JOIN _missing ", " _missing_text)
  message(FATAL_ERROR
    "parley: missing build dependencies: ${_missing_text}.\n"
    "Install them with:  ./scripts/setup-deps   (Debian 12; adds bookworm-backports itself)")
endif()

# One interface target carrying every library the layers link against.
add_library(parley_deps INTERFACE)
target_link_libraries(parley_deps INTERFACE
  PkgConfig::PARLEY_DEP_GNUTLS
  PkgConfig::PARLEY_DEP_LIBSODIUM
  PkgConfig::PARLEY_DEP_LIBUV
  PkgConfig::PARLEY_DEP_OPUS
  PkgConfig::PARLEY_DEP_LIBNGTCP2
  PkgConfig::PARLEY_DEP_LIBNGTCP2_CRYPTO_GNUTLS
  PkgConfig::PARLEY_DEP_LIBNGHTTP3
  PkgConfig::PARLEY_DEP_MINIUPNPC)
add_library(parley::deps ALIAS parley_deps)
