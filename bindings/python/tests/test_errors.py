"""Errors: codes, names and messages; configuration mistakes caught by the C API."""

from __future__ import annotations

import pickle

import pytest

import parley

# A syntactically valid address nobody answers on: contexts are created without a relay.
NOWHERE = "127.0.0.1:9"


@pytest.fixture
def identity():
    with parley.Identity.generate() as identity:
        yield identity


def test_error_attributes() -> None:
    error = parley.Error(-12, "some detail")
    assert isinstance(error, Exception)
    assert error.code == -12 and error.code is parley.ErrorCode.FINGERPRINT_INVALID
    assert error.name == "PARLEY_ERR_FINGERPRINT_INVALID"
    assert error.description  # parley_strerror
    assert str(error).startswith("PARLEY_ERR_FINGERPRINT_INVALID: ")
    assert "some detail" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.code == error.code and str(copy) == str(error)
    unknown = parley.Error(-9999)
    assert unknown.code == -9999 and "UNKNOWN" in unknown.name


def test_bad_relay_address(identity) -> None:
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, "not-an-address")
    assert info.value.code == parley.ErrorCode.ADDRESS_INVALID
    assert info.value.name == "PARLEY_ERR_ADDRESS_INVALID"
    assert "relay_address" in info.value.detail  # parley_last_error_message names the field


def test_bad_relay_fingerprint(identity) -> None:
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, relay_fingerprint="abc")
    assert info.value.code == parley.ErrorCode.FINGERPRINT_INVALID


def test_bad_audio_format(identity) -> None:
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, sample_rate=44100)
    assert info.value.code == parley.ErrorCode.AUDIO_FORMAT
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, channels=3)
    assert info.value.code == parley.ErrorCode.AUDIO_FORMAT


def test_bad_peer_fingerprint_and_not_registered(identity) -> None:
    with parley.Context(identity, NOWHERE) as ctx:
        assert ctx.fingerprint == identity.fingerprint
        with pytest.raises(parley.Error) as info:
            ctx.call("zz" * 32)
        assert info.value.code == parley.ErrorCode.FINGERPRINT_INVALID
        assert info.value.name == "PARLEY_ERR_FINGERPRINT_INVALID"
        with parley.Identity.generate() as peer, pytest.raises(parley.Error) as info:
            ctx.call(peer.fingerprint)  # well-formed, but no relay registration
        assert info.value.code == parley.ErrorCode.NOT_REGISTERED
        event = ctx.poll()  # maybe a RELAY_STATE event (connecting), never an error
        assert event is None or isinstance(event, parley.Event)
    assert ctx.closed
    with pytest.raises(parley.Error) as info:
        ctx.poll()
    assert info.value.code == parley.ErrorCode.CLOSED


def test_wait_for_times_out(identity) -> None:
    with parley.Context(identity, NOWHERE) as ctx:
        with pytest.raises(TimeoutError):
            ctx.wait_for(lambda e: e.type == parley.EventType.INCOMING_CALL, timeout=0.2)


def test_port_range(identity) -> None:
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, port_range=(5000, 4000))
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    assert "port_min" in info.value.detail
    import socket

    # The first port of the range is taken: the context binds the next one.
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        with pytest.raises(parley.Error) as info:
            parley.Context(identity, NOWHERE, bind_address="127.0.0.1:0",
                           port_range=(port, port))
        assert info.value.code == parley.ErrorCode.SOCKET
        with parley.Context(identity, NOWHERE, bind_address="127.0.0.1:0",
                            port_range=(port, min(port + 20, 65535))):
            pass
    finally:
        taken.close()
