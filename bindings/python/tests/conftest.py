"""Fixtures: a real parley-relay process on loopback and two registered contexts.

The relay is the executable named by PARLEY_RELAY (ctest passes the one it built); the
library is PARLEY_LIBRARY. Every wait is on an event with a deadline, never a sleep.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Iterator, Tuple

import pytest

try:
    import parley
except ModuleNotFoundError:  # run from a checkout without PYTHONPATH: use this source tree
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import parley
from parley.testing import RelayProcess

# Deadlines: generous against a loaded CI machine, still far below the ctest timeout.
REGISTER_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0


def pytest_report_header(config: pytest.Config) -> str:
    return (f"libparley {parley.version_string()} from {parley.library_path()}; "
            f"relay {os.environ.get('PARLEY_RELAY', '(PARLEY_RELAY unset)')}")


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    binary = os.environ.get("PARLEY_RELAY")
    if not binary:
        pytest.fail("set PARLEY_RELAY to the parley-relay executable")
    process = RelayProcess(binary, seed_dir=str(tmp_path_factory.mktemp("relay")))
    try:
        yield process
    finally:
        process.stop()


def registered(event: parley.Event) -> bool:
    return (event.type == parley.EventType.RELAY_STATE
            and event.relay_state == parley.RelayState.REGISTERED)


def call_state(call: parley.Call, state: parley.CallState) -> Callable[[parley.Event], bool]:
    return lambda e: (e.type == parley.EventType.CALL_STATE and e.call is call
                      and e.call_state == state)


def make_context(relay: RelayProcess, **kwargs: object) -> parley.Context:
    # The relay by name: "localhost:PORT" goes through the library's resolver.
    port = relay.address.rsplit(":", 1)[1]
    with parley.Identity.generate() as identity:  # the context keeps its own copy
        return parley.Context(identity, f"localhost:{port}", relay.fingerprint,
                              include_loopback=True, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def pair(relay: RelayProcess) -> Iterator[Tuple[parley.Context, parley.Context]]:
    """Two contexts (A, B) registered with the relay."""
    a = make_context(relay)
    b = make_context(relay)
    try:
        a.wait_for(registered, REGISTER_TIMEOUT)
        b.wait_for(registered, REGISTER_TIMEOUT)
        yield a, b
    finally:
        a.close()
        b.close()


def connect(a: parley.Context, b: parley.Context) -> Tuple[parley.Call, parley.Call]:
    """A calls B, B accepts; returns (A's call, B's call) once both are ACTIVE."""
    outgoing = a.call(b.fingerprint)
    incoming = b.wait_for(lambda e: e.type == parley.EventType.INCOMING_CALL, EVENT_TIMEOUT)
    assert incoming.call is not None and incoming.peer == a.fingerprint
    incoming.call.accept()
    a.wait_for(call_state(outgoing, parley.CallState.ACTIVE), EVENT_TIMEOUT)
    b.wait_for(call_state(incoming.call, parley.CallState.ACTIVE), EVENT_TIMEOUT)
    return outgoing, incoming.call
