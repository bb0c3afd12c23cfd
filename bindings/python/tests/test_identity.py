"""Identity: generation, seeds, seed files, fingerprints, certificates."""

from __future__ import annotations

import os
import re
import stat

import pytest

import parley


def test_generate_and_fingerprint() -> None:
    with parley.Identity.generate() as identity:
        fp = identity.fingerprint
        assert re.fullmatch(r"[0-9a-f]{64}", fp)
        assert len(identity.public_key) == parley.PUBLIC_KEY_LEN
        der = identity.certificate_der
        assert der[0] == 0x30  # a DER SEQUENCE
        assert parley.certificate_fingerprint(der) == fp
    assert identity.closed
    with pytest.raises(parley.Error) as info:
        identity.fingerprint
    assert info.value.code == parley.ErrorCode.CLOSED
    identity.close()  # idempotent


def test_from_seed_is_deterministic() -> None:
    seed = bytes(range(32))
    with parley.Identity.from_seed(seed) as one, parley.Identity.from_seed(seed) as two:
        assert one.fingerprint == two.fingerprint
        assert one.certificate_der == two.certificate_der
        assert one.export_seed() == seed
    with parley.Identity.generate() as other:
        assert other.export_seed() != seed


def test_from_seed_wrong_length() -> None:
    with pytest.raises(parley.Error) as info:
        parley.Identity.from_seed(b"short")
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    assert info.value.name == "PARLEY_ERR_INVALID_ARGUMENT"


def test_seed_files(tmp_path) -> None:
    path = tmp_path / "id.seed"
    with parley.Identity.generate() as identity:
        identity.save_file(path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with parley.Identity.load_file(path) as loaded:
            assert loaded.fingerprint == identity.fingerprint
        with pytest.raises(parley.Error) as info:
            identity.save_file(path)
        assert info.value.code == parley.ErrorCode.SEED_FILE_EXISTS
        with parley.Identity.generate() as other:
            other.save_file(str(path), overwrite=True)
            with parley.Identity.load_file(str(path)) as loaded:
                assert loaded.fingerprint == other.fingerprint

    with pytest.raises(parley.Error) as info:
        parley.Identity.load_file(tmp_path / "missing.seed")
    assert info.value.code == parley.ErrorCode.SEED_FILE_NOT_FOUND
    assert "missing.seed" in str(info.value)  # the detailed message names the file

    os.chmod(path, 0o644)
    with pytest.raises(parley.Error) as info:
        parley.Identity.load_file(path)
    assert info.value.code == parley.ErrorCode.SEED_FILE_PERMISSIONS

    bad = tmp_path / "bad.seed"
    bad.write_bytes(b"too short")
    os.chmod(bad, 0o600)
    with pytest.raises(parley.Error) as info:
        parley.Identity.load_file(bad)
    assert info.value.code == parley.ErrorCode.SEED_FILE_INVALID


def test_normalize_fingerprint() -> None:
    with parley.Identity.generate() as identity:
        fp = identity.fingerprint
    grouped = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
    assert parley.normalize_fingerprint(grouped) == fp
    with pytest.raises(parley.Error) as info:
        parley.normalize_fingerprint("not a fingerprint")
    assert info.value.code == parley.ErrorCode.FINGERPRINT_INVALID


def test_certificate_fingerprint_rejects_garbage() -> None:
    with pytest.raises(parley.Error) as info:
        parley.certificate_fingerprint(b"\x01\x02\x03")
    assert info.value.code == parley.ErrorCode.CERT_MALFORMED
