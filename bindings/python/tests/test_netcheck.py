"""netcheck against the loopback relay's STUN port."""

from __future__ import annotations

import parley


def test_netcheck_json_and_text(relay) -> None:
    report = parley.netcheck([relay.address], bind_address="127.0.0.1:0", deadline_ms=1000,
                             include_loopback=True)
    assert report["udp"] is True
    assert report["stun_servers"][0]["status"] == "ok"
    text = parley.netcheck([relay.address], bind_address="127.0.0.1:0", deadline_ms=1000,
                           text=True)
    assert isinstance(text, str) and text


def test_netcheck_bad_server() -> None:
    try:
        parley.netcheck(["not an address"], deadline_ms=100)
    except parley.Error as e:
        assert e.code == parley.ErrorCode.ADDRESS_INVALID
    else:
        raise AssertionError("expected parley.Error")
