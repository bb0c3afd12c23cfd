#!/usr/bin/env bash
# The crypto seam holds: only the backend files include a TLS library (crypto/backend_*.cc,
# quic/tls_*.cc), and a BoringSSL-built libparley loads none of GnuTLS's chain.
#   crypto_seam.sh SRC_DIR LIBPARLEY_SO TLS_BACKEND
set -euo pipefail
src=$1 lib=$2 backend=$3

leaks=$(grep -rlE '#[[:space:]]*include[[:space:]]*[<"](gnutls|openssl|ngtcp2/ngtcp2_crypto)' \
          "$src/src" "$src/capi" "$src/include" |
        sed "s|^$src/||" |
        grep -vxE 'src/crypto/backend_(gnutls|boringssl)\.cc|src/quic/tls_(gnutls|boringssl)\.cc' || true)
if [ -n "$leaks" ]; then
  echo "FAIL: these files include a TLS library outside the seam:"
  echo "$leaks"
  exit 1
fi
echo "ok: only the seam's backend files include a TLS library"

# Capture first: `ldd | grep -q` under pipefail can fail on SIGPIPE.
deps=$(ldd "$lib")
echo "$lib loads:"
awk '{print "  " $1 " " $3}' <<<"$deps"
if [ "$backend" = boringssl ]; then
  bad=$(grep -oE 'lib(gnutls|nettle|hogweed|gmp|unistring|idn2|tasn1|p11-kit)[^ ]*' <<<"$deps" || true)
  if [ -n "$bad" ]; then
    echo "FAIL: a BoringSSL build loads GnuTLS's chain: $bad"
    exit 1
  fi
  grep -qE 'libssl\.so|libcrypto\.so' <<<"$deps" || { echo "FAIL: no BoringSSL loaded"; exit 1; }
  echo "ok: no gnutls, nettle, hogweed, gmp, libunistring, libidn2, libtasn1 or p11-kit"
fi
