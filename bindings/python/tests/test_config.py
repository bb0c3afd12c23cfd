"""Context options appended to parley_context_config: bind_address6, no_path_timeout_ms, dtx,
disable_network_watch, stun_servers, port_mapping (never turned on here: it would ask this
machine's real gateway for a port).

Each test checks that the option reaches the library (a behaviour only it explains), not
just that the keyword is accepted. Every wait is on an event with a deadline.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator

import pytest

import parley
from parley.testing import RelayProcess
from conftest import REGISTER_TIMEOUT, call_state, connect, make_context, registered

NOWHERE = "127.0.0.1:9"  # a valid address nobody answers on

# The no-path test's timeout, far below the default (30 s): a call that ends within the
# deadline below was ended by this value. The context notices a silent relay after ~2 s.
NO_PATH_MS = 500
NO_PATH_DEADLINE = 10.0


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


@pytest.fixture
def identity() -> Iterator[parley.Identity]:
    with parley.Identity.generate() as identity:
        yield identity


@pytest.fixture
def relay6(tmp_path) -> Iterator[RelayProcess]:
    """A relay of its own, listening on [::1] only (the no-path test stops it)."""
    process = RelayProcess(os.environ.get("PARLEY_RELAY"), listen="[::1]:0",
                           seed_dir=str(tmp_path))
    try:
        yield process
    finally:
        process.stop()


def test_bind_address6_must_be_ipv6(identity) -> None:
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, bind_address="127.0.0.1:0",
                       bind_address6="127.0.0.1:0")
    assert info.value.code == parley.ErrorCode.ADDRESS_FAMILY
    assert info.value.name == "PARLEY_ERR_ADDRESS_FAMILY"
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, bind_address6="not an address")
    assert info.value.code == parley.ErrorCode.ADDRESS_INVALID
    assert "bind_address6" in info.value.detail


@needs_ipv6
def test_bind_address6_next_to_an_ipv6_bind_address(identity) -> None:
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, "[::1]:9", bind_address="[::1]:0", bind_address6="[::1]:0")
    assert info.value.code == parley.ErrorCode.ADDRESS_FAMILY


@needs_ipv6
def test_bind_address6_port_is_bound(identity) -> None:
    # The IPv6 socket binds exactly bind_address6: a port already taken there is refused.
    taken = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    taken.bind(("::1", 0))
    port = taken.getsockname()[1]
    try:
        with pytest.raises(parley.Error) as info:
            parley.Context(identity, NOWHERE, bind_address="127.0.0.1:0",
                           bind_address6=f"[::1]:{port}")
        assert info.value.code == parley.ErrorCode.SOCKET
    finally:
        taken.close()


@needs_ipv6
def test_dual_bind_registers_with_ipv4_relay(relay, identity) -> None:
    with parley.Context(identity, relay.address, relay.fingerprint, bind_address="127.0.0.1:0",
                        bind_address6="[::1]:0", no_path_timeout_ms=5000, dtx=True) as ctx:
        ctx.wait_for(registered, REGISTER_TIMEOUT)


@needs_ipv6
def test_bind_address6_carries_an_ipv6_relay(relay6, identity) -> None:
    # An IPv4 bind_address alone has no socket that can reach an IPv6 relay ...
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, relay6.address, relay6.fingerprint,
                       bind_address="127.0.0.1:0")
    assert info.value.code == parley.ErrorCode.ADDRESS_FAMILY
    # ... the IPv6 socket on bind_address6 registers with it. (Next to an IPv4 bind_address
    # the library refuses an IPv6 relay *literal* at create: its family check looks at
    # bind_address only; a relay name would connect over the IPv6 socket.)
    with parley.Context(identity, relay6.address, relay6.fingerprint,
                        bind_address6="[::1]:0") as ctx:
        ctx.wait_for(registered, REGISTER_TIMEOUT)


@needs_ipv6
def test_no_path_timeout_ends_call(relay6) -> None:
    """Relay-only calls (disable_direct) whose relay goes away end with NO_PATH after
    no_path_timeout_ms, long before the default 30 s. dtx rides along (it changes what goes
    on the wire, not whether the call works)."""
    contexts = []
    try:
        for _ in range(2):
            with parley.Identity.generate() as identity:
                contexts.append(parley.Context(
                    identity, relay6.address, relay6.fingerprint, bind_address6="[::1]:0",
                    disable_direct=True, dtx=True,
                    no_path_timeout_ms=NO_PATH_MS))
        a, b = contexts
        a.wait_for(registered, REGISTER_TIMEOUT)
        b.wait_for(registered, REGISTER_TIMEOUT)
        call_a, call_b = connect(a, b)
        assert call_a.stats().path == parley.Path.RELAY

        relay6.stop()
        for ctx, call in ((a, call_a), (b, call_b)):
            event = ctx.wait_for(call_state(call, parley.CallState.ENDED), NO_PATH_DEADLINE)
            assert event.error == parley.ErrorCode.NO_PATH, event
            assert f"{NO_PATH_MS} ms" in (event.text or ""), event
    finally:
        for ctx in contexts:
            ctx.close()


# A STUN server nobody answers on: calls never wait for STUN answers, so it costs nothing.
DEAD_STUN = "127.0.0.1:3478"


def test_stun_servers_accepted(identity) -> None:
    # A list (joined with "," for the C field), a tuple, one comma-separated str, nothing.
    for servers in ([DEAD_STUN], (DEAD_STUN, "[::1]:3478", "localhost:3478"),
                    f"{DEAD_STUN}, localhost:3478", [], "", None,
                    [f"127.0.0.{i}:3478" for i in range(1, parley.STUN_SERVERS_MAX + 1)]):
        with parley.Context(identity, NOWHERE, stun_servers=servers, port_mapping=False,
                            disable_network_watch=True) as ctx:
            assert ctx.fingerprint == identity.fingerprint


def test_stun_servers_refused(identity) -> None:
    # Malformed entries and too many servers reach the library, which refuses them.
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, stun_servers=["not a host:port"])
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    assert info.value.name == "PARLEY_ERR_INVALID_ARGUMENT"
    assert "STUN server" in info.value.detail
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, stun_servers=f"{DEAD_STUN},not a host:port")
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    nine = [f"127.0.0.{i}:3478" for i in range(1, parley.STUN_SERVERS_MAX + 2)]
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, stun_servers=nine)
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    assert "at most 8" in info.value.detail
    # An entry holding a comma would read as two in the C field: refused by the binding.
    with pytest.raises(parley.Error) as info:
        parley.Context(identity, NOWHERE, stun_servers=[f"{DEAD_STUN},{DEAD_STUN}"])
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    assert "stun_servers[0]" in info.value.detail
    with pytest.raises(TypeError):
        parley.Context(identity, NOWHERE, stun_servers=[DEAD_STUN, 3478])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        parley.Context(identity, NOWHERE, stun_servers=b"127.0.0.1:3478")  # type: ignore[arg-type]


def test_dead_stun_server_costs_nothing(relay) -> None:
    """Contexts with a STUN server that never answers (and no network watch, port mapping
    off) register and place a call as usual."""
    options = dict(stun_servers=[DEAD_STUN], port_mapping=False, disable_network_watch=True)
    a = make_context(relay, **options)
    b = make_context(relay, **options)
    try:
        a.wait_for(registered, REGISTER_TIMEOUT)
        b.wait_for(registered, REGISTER_TIMEOUT)
        call_a, call_b = connect(a, b)
        assert call_a.state == parley.CallState.ACTIVE
        assert call_b.state == parley.CallState.ACTIVE
    finally:
        a.close()
        b.close()
