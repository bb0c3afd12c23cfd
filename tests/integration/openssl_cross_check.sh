#!/usr/bin/env bash
# An implementation nobody here wrote (OpenSSL) reads parley's certificate: it must parse,
# carry the identity's Ed25519 key, name the fingerprint, and verify as self-signed.
set -euo pipefail
bin=$1
command -v openssl >/dev/null || { echo "openssl not installed (scripts/setup-deps installs it)"; exit 1; }
work=$(mktemp -d /tmp/parley-openssl-XXXXXX)
trap 'rm -rf "$work"' EXIT
fp=$("$bin" new "$work/me.seed")
"$bin" cert "$work/me.seed" >/dev/null
"$bin" certder "$work/me.seed" "$work/me.der"
openssl x509 -inform DER -in "$work/me.der" -out "$work/me.pem"
text=$(openssl x509 -in "$work/me.pem" -noout -text)
grep -q "Public Key Algorithm: ED25519" <<<"$text" || { echo "not Ed25519"; exit 1; }
grep -q "Subject: CN = $fp" <<<"$text" || { echo "subject is not the fingerprint"; exit 1; }
grep -q "Not After : Dec 31 23:59:59 9999 GMT" <<<"$text" || { echo "unexpected validity"; exit 1; }
# The SHA-256 of the raw public key, as OpenSSL extracts it, is the fingerprint.
pk_fp=$(openssl pkey -pubin -in <(openssl x509 -in "$work/me.pem" -noout -pubkey) -outform DER \
        | tail -c 32 | sha256sum | cut -d' ' -f1)
[ "$pk_fp" = "$fp" ] || { echo "OpenSSL's key hashes to $pk_fp, parley says $fp"; exit 1; }
openssl verify -check_ss_sig -CAfile "$work/me.pem" "$work/me.pem" >/dev/null
echo "ok: OpenSSL parses, matches and verifies the certificate of $fp"
