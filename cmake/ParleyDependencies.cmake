# Finds every third-party library parley uses, through pkg-config, and fails once with a
# message naming the Debian packages to install when anything is missing.
find_package(PkgConfig)
find_package(Threads REQUIRED)

# The TLS library behind the crypto seam (crypto/backend.h, quic/tls.h). GnuTLS is Debian's
# default; BoringSSL (or AWS-LC, same API) is what an app-store or console build ships, since
# GnuTLS's required chain is LGPLv3+/GPLv2+ (docs/building.md).
set(PARLEY_TLS "gnutls" CACHE STRING "TLS backend: gnutls or boringssl")
set_property(CACHE PARLEY_TLS PROPERTY STRINGS gnutls boringssl)
if(NOT PARLEY_TLS MATCHES "^(gnutls|boringssl)$")
  message(FATAL_ERROR "parley: PARLEY_TLS must be gnutls or boringssl, not '${PARLEY_TLS}'")
endif()

# module name -> minimum version -> Debian package (bookworm / bookworm-backports)
set(_parley_deps
  "libsodium|1.0.18|libsodium-dev"
  "libuv|1.44.0|libuv1-dev"
  "opus|1.3|libopus-dev"
  "libngtcp2|1.11.0|libngtcp2-dev (bookworm-backports)"
  "miniupnpc|2.2|libminiupnpc-dev")
if(PARLEY_TLS STREQUAL "gnutls")
  list(APPEND _parley_deps
    "gnutls|3.7.0|libgnutls28-dev"
    "libngtcp2_crypto_gnutls|1.11.0|libngtcp2-crypto-gnutls-dev (bookworm-backports)")
endif()
# Only the relay (HTTP/3 /health and /metrics) and its tests use nghttp3; libparley does not.
set(_parley_relay_deps "libnghttp3|1.8.0|libnghttp3-dev (bookworm-backports)")
# Tests drive an independent GnuTLS QUIC client and make foreign certificates with GnuTLS, on
# either backend (a test tool, like gtlsclient; never linked into libparley).
set(_parley_test_deps
  "gnutls|3.7.0|libgnutls28-dev"
  "libngtcp2_crypto_gnutls|1.11.0|libngtcp2-crypto-gnutls-dev (bookworm-backports)")

set(_missing "")
if(NOT PKG_CONFIG_FOUND)
  list(APPEND _missing "pkg-config")
endif()
set(PARLEY_PKGCONFIG_MODULES "")
# Looks each "module|version|package" up (a macro, so the imported targets and variables land
# in this scope); `record` adds the module to the .pc file's Requires.private.
macro(_parley_find_modules list_var record)
  foreach(_d IN LISTS ${list_var})
    string(REPLACE "|" ";" _d "${_d}")
    list(GET _d 0 _mod)
    list(GET _d 1 _ver)
    list(GET _d 2 _pkg)
    string(TOUPPER "PARLEY_DEP_${_mod}" _var)
    if(PKG_CONFIG_FOUND AND NOT TARGET PkgConfig::${_var})
      pkg_check_modules(${_var} QUIET IMPORTED_TARGET "${_mod}>=${_ver}")
    endif()
    if(NOT TARGET PkgConfig::${_var})
      list(APPEND _missing "${_pkg}")
    elseif(${record})
      list(APPEND PARLEY_PKGCONFIG_MODULES "${_mod} >= ${_ver}")
    endif()
  endforeach()
endmacro()
_parley_find_modules(_parley_deps TRUE)
_parley_find_modules(_parley_relay_deps FALSE)
if(PARLEY_BUILD_TESTS OR PARLEY_BUILD_FUZZERS)
  _parley_find_modules(_parley_test_deps FALSE)
endif()

# BoringSSL has no pkg-config file. Debian's android-libboringssl-dev puts the headers in
# /usr/include/android and the libraries in /usr/lib/<triplet>/android; an upstream BoringSSL
# or AWS-LC build is pointed at with PARLEY_BORINGSSL_ROOT (its include/ and lib/).
if(PARLEY_TLS STREQUAL "boringssl")
  set(PARLEY_BORINGSSL_ROOT "" CACHE PATH "An upstream BoringSSL/AWS-LC install (include/, lib/)")
  if(PARLEY_BORINGSSL_ROOT)
    set(_bssl_inc_hints ${PARLEY_BORINGSSL_ROOT}/include)
    set(_bssl_lib_hints ${PARLEY_BORINGSSL_ROOT}/lib ${PARLEY_BORINGSSL_ROOT}/lib64)
  else()
    set(_bssl_inc_hints /usr/include/android)
    set(_bssl_lib_hints /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
  endif()
  find_path(PARLEY_BORINGSSL_INCLUDE_DIR openssl/base.h HINTS ${_bssl_inc_hints} NO_DEFAULT_PATH)
  find_library(PARLEY_BORINGSSL_SSL NAMES ssl HINTS ${_bssl_lib_hints} NO_DEFAULT_PATH)
  find_library(PARLEY_BORINGSSL_CRYPTO NAMES crypto HINTS ${_bssl_lib_hints} NO_DEFAULT_PATH)
  if(NOT PARLEY_BORINGSSL_INCLUDE_DIR OR NOT PARLEY_BORINGSSL_SSL OR NOT PARLEY_BORINGSSL_CRYPTO)
    list(APPEND _missing "android-libboringssl-dev (bookworm-backports), or PARLEY_BORINGSSL_ROOT")
  else()
    add_library(parley_boringssl INTERFACE)
    # Only the two seam files include it, but its headers must not shadow OpenSSL's for
    # anything else: they come last.
    target_include_directories(parley_boringssl SYSTEM AFTER INTERFACE ${PARLEY_BORINGSSL_INCLUDE_DIR})
    target_link_libraries(parley_boringssl INTERFACE ${PARLEY_BORINGSSL_SSL} ${PARLEY_BORINGSSL_CRYPTO})
    message(STATUS "parley: TLS backend BoringSSL (${PARLEY_BORINGSSL_SSL})")
    get_filename_component(PARLEY_BORINGSSL_LIBDIR "${PARLEY_BORINGSSL_SSL}" DIRECTORY)
  endif()
endif()

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
  PkgConfig::PARLEY_DEP_LIBSODIUM
  PkgConfig::PARLEY_DEP_LIBUV
  PkgConfig::PARLEY_DEP_OPUS
  PkgConfig::PARLEY_DEP_LIBNGTCP2
  PkgConfig::PARLEY_DEP_MINIUPNPC)
if(PARLEY_TLS STREQUAL "gnutls")
  target_link_libraries(parley_deps INTERFACE
    PkgConfig::PARLEY_DEP_GNUTLS PkgConfig::PARLEY_DEP_LIBNGTCP2_CRYPTO_GNUTLS)
else()
  target_link_libraries(parley_deps INTERFACE parley_boringssl)
endif()
add_library(parley::deps ALIAS parley_deps)

# What a consumer of the installed library needs (parley.pc, parleyConfig.cmake).
set(PARLEY_STATIC_PKG_MODULES "")
foreach(_m IN LISTS PARLEY_PKGCONFIG_MODULES)
  string(REGEX REPLACE " .*" "" _m "${_m}")
  string(APPEND PARLEY_STATIC_PKG_MODULES " ${_m}")
endforeach()
if(PARLEY_TLS STREQUAL "boringssl")
  set(PARLEY_PC_LIBS_PRIVATE "-L${PARLEY_BORINGSSL_LIBDIR} -lssl -lcrypto")
  set(PARLEY_STATIC_EXTRA_LIBS "${PARLEY_BORINGSSL_SSL};${PARLEY_BORINGSSL_CRYPTO}")
else()
  set(PARLEY_PC_LIBS_PRIVATE "")
  set(PARLEY_STATIC_EXTRA_LIBS "")
endif()

add_library(parley_nghttp3 INTERFACE)
target_link_libraries(parley_nghttp3 INTERFACE PkgConfig::PARLEY_DEP_LIBNGHTTP3)
add_library(parley::nghttp3 ALIAS parley_nghttp3)

if(PARLEY_BUILD_TESTS OR PARLEY_BUILD_FUZZERS)
  # The tests' own GnuTLS QUIC client and certificate maker (see _parley_test_deps).
  add_library(parley_test_gnutls INTERFACE)
  target_link_libraries(parley_test_gnutls INTERFACE
    PkgConfig::PARLEY_DEP_GNUTLS PkgConfig::PARLEY_DEP_LIBNGTCP2_CRYPTO_GNUTLS)
  add_library(parley::test_gnutls ALIAS parley_test_gnutls)
endif()
