"""parley.Identity: an Ed25519 identity (seed, key pair, fingerprint, certificate).

The secrets stay inside libparley's guarded memory; this object only holds the opaque
pointer and frees it (parley_identity_destroy wipes it) on close(), at the end of a ``with``
block, or when garbage-collected. A context copies the identity it is created with, so the
Identity may be closed once its contexts exist.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Optional, Union

from ._enums import ErrorCode, FINGERPRINT_BUF_LEN, PUBLIC_KEY_LEN, SAVE_OVERWRITE, SEED_LEN
from ._native import fingerprint_buffer, lib
from ._closeable import Closeable
from .errors import Error, check

PathLike = Union[str, "os.PathLike[str]"]


class Identity(Closeable):
    """An identity handle. Create with generate(), from_seed() or load_file()."""

    def __init__(self, _ptr: int) -> None:
        # Use the class methods; the constructor takes ownership of a parley_identity *.
        self._ptr: Optional[int] = _ptr
        self._lock = threading.Lock()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def generate(cls) -> "Identity":
        """A new identity from the system's CSPRNG."""
        out = ctypes.c_void_p()
        check(lib.identity_generate(ctypes.byref(out)), "parley_identity_generate")
        return cls(out.value)

    @classmethod
    def from_seed(cls, seed: bytes) -> "Identity":
        """The identity of a 32-byte seed (the same seed always gives the same identity)."""
        seed = bytes(seed)
        out = ctypes.c_void_p()
        check(lib.identity_from_seed(seed, len(seed), ctypes.byref(out)),
              "parley_identity_from_seed")
        return cls(out.value)

    @classmethod
    def load_file(cls, path: PathLike) -> "Identity":
        """Reads a seed file written by save_file (mode 0600, owned by this user)."""
        out = ctypes.c_void_p()
        check(lib.identity_load_file(os.fsencode(path), ctypes.byref(out)),
              "parley_identity_load_file")
        return cls(out.value)

    # -- use -------------------------------------------------------------------------------

    @property
    def _handle(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise Error(ErrorCode.CLOSED, "the identity was closed", "Identity")
        return ptr

    def save_file(self, path: PathLike, overwrite: bool = False) -> None:
        """Writes the seed to `path` atomically with mode 0600 (refuses to replace a file
        unless `overwrite`)."""
        check(lib.identity_save_file(self._handle, os.fsencode(path),
                                     SAVE_OVERWRITE if overwrite else 0),
              "parley_identity_save_file")

    @property
    def fingerprint(self) -> str:
        """64 lowercase hex characters: SHA-256 of the public key."""
        buf = fingerprint_buffer()
        check(lib.identity_fingerprint(self._handle, buf, FINGERPRINT_BUF_LEN),
              "parley_identity_fingerprint")
        return buf.value.decode()

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        buf = ctypes.create_string_buffer(PUBLIC_KEY_LEN)
        check(lib.identity_public_key(self._handle, buf), "parley_identity_public_key")
        return buf.raw

    def export_seed(self) -> bytes:
        """The secret 32-byte seed (for a platform key store). Handle with care: Python
        cannot wipe the bytes object it returns."""
        buf = ctypes.create_string_buffer(SEED_LEN)
        try:
            check(lib.identity_export_seed(self._handle, buf), "parley_identity_export_seed")
            return buf.raw
        finally:
            ctypes.memset(buf, 0, SEED_LEN)

    @property
    def certificate_der(self) -> bytes:
        """The deterministic self-signed X.509 certificate, DER."""
        size = ctypes.c_size_t(0)
        rc = lib.identity_certificate_der(self._handle, None, ctypes.byref(size))
        if rc not in (0, ErrorCode.BUFFER_TOO_SMALL):
            check(rc, "parley_identity_certificate_der")
        buf = ctypes.create_string_buffer(size.value)
        check(lib.identity_certificate_der(self._handle, buf, ctypes.byref(size)),
              "parley_identity_certificate_der")
        return buf.raw[: size.value]

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Wipes and frees the identity. Idempotent."""
        with self._lock:
            ptr, self._ptr = self._ptr, None
        if ptr is not None:
            lib.identity_destroy(ptr)

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<parley.Identity closed>"
        return f"<parley.Identity {self.fingerprint}>"


def certificate_fingerprint(der: bytes) -> str:
    """The parley fingerprint of a DER certificate with an Ed25519 key (no CA involved)."""
    der = bytes(der)
    buf = fingerprint_buffer()
    check(lib.certificate_fingerprint(der, len(der), buf, FINGERPRINT_BUF_LEN),
          "parley_certificate_fingerprint")
    return buf.value.decode()


def normalize_fingerprint(text: str) -> str:
    """The canonical form (64 lowercase hex) of a fingerprint a human may have copied with
    spaces, ':' or '-' in either case. Raises Error(FINGERPRINT_INVALID) otherwise."""
    buf = fingerprint_buffer()
    check(lib.fingerprint_normalize(text.encode(), buf, FINGERPRINT_BUF_LEN),
          "parley_fingerprint_normalize")
    return buf.value.decode()
