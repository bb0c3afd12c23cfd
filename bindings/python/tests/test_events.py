"""Waiting for events: events()/wait_for() block in parley_context_wait_event (in slices, so
close() from another thread ends a wait promptly), and fall back to polling with sleeps
against a libparley without it. Every wait is on an event with a deadline. Also how events
are copied out of parley_event (origin, the untrusted relay, a refused invite)."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

import parley
from parley import _native
from conftest import EVENT_TIMEOUT, REGISTER_TIMEOUT, call_state, make_context, registered

needs_wait_event = pytest.mark.skipif(_native.lib.context_wait_event is None,
                                      reason="this libparley has no parley_context_wait_event")


class _Counting:
    """Wraps a ctypes function, counting calls."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def incoming(e: parley.Event) -> bool:
    return e.type == parley.EventType.INCOMING_CALL


@needs_wait_event
def test_wait_for_blocks_in_wait_event_until_its_deadline(pair, monkeypatch) -> None:
    a, _ = pair
    wait = _Counting(_native.lib.context_wait_event)
    poll = _Counting(_native.lib.context_poll_event_v2)
    monkeypatch.setattr(_native.lib, "context_wait_event", wait)
    monkeypatch.setattr(_native.lib, "context_poll_event_v2", poll)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        a.wait_for(lambda e: False, 0.35)
    elapsed = time.monotonic() - start
    assert 0.35 <= elapsed < 0.35 + 2.0, elapsed
    # Blocking waits of up to 100 ms each, not a busy or sleeping poll loop.
    assert 4 <= wait.calls <= 12, wait.calls
    assert poll.calls <= 3, poll.calls


def test_a_waiter_wakes_for_an_event_from_another_thread(pair) -> None:
    a, b = pair
    result = {}

    def waiter() -> None:
        try:
            result["event"] = b.wait_for(incoming, EVENT_TIMEOUT)
        except BaseException as e:  # reported by the main thread
            result["error"] = e

    thread = threading.Thread(target=waiter)
    thread.start()
    call = a.call(b.fingerprint)  # the context lock is free while B's thread waits
    thread.join(EVENT_TIMEOUT + 5)
    assert not thread.is_alive()
    assert "error" not in result, result
    event = result["event"]
    assert event.peer == a.fingerprint and event.call in b.calls
    call.hangup()


@needs_wait_event
def test_close_ends_a_wait_on_another_thread(relay) -> None:
    ctx = make_context(relay)
    ctx.wait_for(registered, REGISTER_TIMEOUT)
    started = threading.Event()
    result = {}

    def waiter() -> None:
        started.set()
        try:
            for _ in ctx.events(None):  # forever, until closed
                pass
        except BaseException as e:
            result["error"] = e

    thread = threading.Thread(target=waiter)
    thread.start()
    assert started.wait(EVENT_TIMEOUT)
    start = time.monotonic()
    ctx.close()
    closing = time.monotonic() - start
    thread.join(EVENT_TIMEOUT)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), parley.Error), result
    assert result["error"].code == parley.ErrorCode.CLOSED
    assert closing < 2.0, closing  # one wait slice (0.1 s), plus the context's teardown
    with pytest.raises(parley.Error) as info:
        ctx.poll()
    assert info.value.code == parley.ErrorCode.CLOSED


def test_polling_fallback_without_wait_event(pair, monkeypatch) -> None:
    a, b = pair
    monkeypatch.setattr(_native.lib, "context_wait_event", None)
    call = a.call(b.fingerprint)
    event = b.wait_for(incoming, EVENT_TIMEOUT)
    assert event.peer == a.fingerprint
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        b.wait_for(lambda e: False, 0.2)
    assert time.monotonic() - start >= 0.2
    call.hangup()
    b.wait_for(call_state(event.call, parley.CallState.ENDED), EVENT_TIMEOUT)


def _struct(**fields) -> _native.EventStruct:
    ev = _native.EventStruct()
    for name, value in fields.items():
        setattr(ev, name, value)
    return ev


def test_event_translation_of_origin_untrusted_relay_and_refused_invite() -> None:
    """The fields the trust change added, as _translate copies them out of a parley_event
    (written here by hand: a forged invite needs a hostile relay, which the real one is not).
    """
    if not _native.has_origin():
        pytest.skip("this libparley has no parley_event.origin")
    fp = "ab" * 32
    text = ctypes.create_string_buffer(b"refused an invite: stale media key")
    with parley.Identity.generate() as me, parley.Context(me, "127.0.0.1:9") as ctx:
        refused = ctx._translate(_struct(
            type=parley.EventType.ERROR, error=parley.ErrorCode.MEDIA_KEY, peer=fp.encode(),
            text=ctypes.addressof(text), origin=parley.Origin.LOCAL))
        assert refused.type == parley.EventType.ERROR and refused.call is None
        assert refused.peer == fp and refused.error == parley.ErrorCode.MEDIA_KEY
        assert refused.origin is parley.Origin.LOCAL
        assert refused.text == "refused an invite: stale media key"

        relay_error = ctx._translate(_struct(
            type=parley.EventType.ERROR, error=parley.ErrorCode.RATE_LIMITED,
            text=ctypes.addressof(text), origin=parley.Origin.RELAY))
        assert relay_error.origin is parley.Origin.RELAY and relay_error.peer == ""
        assert "origin=RELAY" in repr(relay_error)

        untrusted = ctx._translate(_struct(
            type=parley.EventType.RELAY_STATE, relay_state=parley.RelayState.UNTRUSTED,
            peer=fp.encode()))
        assert untrusted.relay_state is parley.RelayState.UNTRUSTED and untrusted.peer == fp
        assert ctx.relay_state is parley.RelayState.UNTRUSTED

        newer = ctx._translate(_struct(type=parley.EventType.ERROR, origin=7))
        assert newer.origin == 7  # an origin newer than this binding stays a plain int
