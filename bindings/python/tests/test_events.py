"""Waiting for events: events()/wait_for() block in parley_context_wait_event_sized (close()
from another thread ends a wait at once with parley_context_wake); events_async() waits on
parley_context_event_fd with asyncio. Every wait is on an event with a deadline. Also how
events are copied out of parley_event (origin, the untrusted relay, a refused invite, the
user data that names calls and rooms)."""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time

import pytest

import parley
from parley import _native
from conftest import EVENT_TIMEOUT, REGISTER_TIMEOUT, call_state, make_context, registered

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


def test_wait_for_blocks_in_wait_event_until_its_deadline(pair, monkeypatch) -> None:
    a, _ = pair
    wait = _Counting(_native.lib.context_wait_event_sized)
    poll = _Counting(_native.lib.context_poll_event_sized)
    monkeypatch.setattr(_native.lib, "context_wait_event_sized", wait)
    monkeypatch.setattr(_native.lib, "context_poll_event_sized", poll)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        a.wait_for(lambda e: False, 0.35)
    elapsed = time.monotonic() - start
    assert 0.35 <= elapsed < 0.35 + 2.0, elapsed
    # On the main thread: blocking waits of up to 100 ms each (Ctrl-C), not a poll loop.
    assert 4 <= wait.calls <= 12, wait.calls
    assert poll.calls <= 3, poll.calls


def test_a_wait_off_the_main_thread_is_one_wait(pair, monkeypatch) -> None:
    """Other threads get no KeyboardInterrupt: their wait is not cut into slices."""
    a, _ = pair
    wait = _Counting(_native.lib.context_wait_event_sized)
    monkeypatch.setattr(_native.lib, "context_wait_event_sized", wait)
    result = {}

    def waiter() -> None:
        start = time.monotonic()
        try:
            a.wait_for(lambda e: False, 0.5)
        except TimeoutError:
            result["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(EVENT_TIMEOUT)
    assert 0.5 <= result["elapsed"] < 2.5, result
    assert wait.calls <= 3, wait.calls  # one wait to the deadline (plus any events on the way)


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
    assert closing < 2.0, closing  # woken at once (parley_context_wake), plus the teardown
    with pytest.raises(parley.Error) as info:
        ctx.poll()
    assert info.value.code == parley.ErrorCode.CLOSED


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


def test_an_event_polled_before_the_token_was_set_names_the_call(pair) -> None:
    """An event polled between parley_call_start and parley_call_set_user_data carries no
    user data: translation then reads the handle's (set by then), so it names the Call."""
    a, b = pair
    call = a.call(b.fingerprint)
    with a._lock:
        event = a._translate(_struct(type=parley.EventType.CALL_STATE, call=call._ptr,
                                     call_state=parley.CallState.RINGING, user_data=None))
    assert event.call is call
    call.release()
    with a._lock:  # a token no longer in the context: the Call was released
        event = a._translate(_struct(type=parley.EventType.CALL_STATE, call=12345,
                                     call_state=parley.CallState.ENDED, user_data=call._token))
    assert event.call is None


async def _first(ctx: parley.Context, predicate, timeout: float) -> parley.Event:
    """The first event of ctx.events_async() that satisfies `predicate` (closing the
    generator at once), within `timeout` seconds."""

    async def search() -> parley.Event:
        events = ctx.events_async()
        try:
            async for event in events:
                if predicate(event):
                    return event
        finally:
            await events.aclose()
        raise AssertionError("events_async() ended")

    return await asyncio.wait_for(search(), timeout)


def test_events_async_places_a_call(relay, monkeypatch) -> None:
    """A whole call between two contexts through the relay, every event taken with
    events_async() on one asyncio loop (parley_context_event_fd): no thread ever blocks in
    parley_context_wait_event."""

    def no_blocking_wait(*args):
        raise AssertionError("events_async() must not block in parley_context_wait_event")

    monkeypatch.setattr(_native.lib, "context_wait_event_sized", no_blocking_wait)
    a = make_context(relay)
    b = make_context(relay)

    async def main() -> None:
        await asyncio.gather(_first(a, registered, REGISTER_TIMEOUT),
                             _first(b, registered, REGISTER_TIMEOUT))
        call = a.call(b.fingerprint)
        ringing = asyncio.ensure_future(
            _first(a, call_state(call, parley.CallState.RINGING), EVENT_TIMEOUT))
        event = await _first(b, incoming, EVENT_TIMEOUT)
        assert event.peer == a.fingerprint and event.call in b.calls
        await ringing
        event.call.accept()
        await asyncio.gather(
            _first(a, call_state(call, parley.CallState.ACTIVE), EVENT_TIMEOUT),
            _first(b, call_state(event.call, parley.CallState.ACTIVE), EVENT_TIMEOUT))
        call.send_datagram(b"async")
        datagram = await _first(b, lambda e: e.type == parley.EventType.DATAGRAM,
                                EVENT_TIMEOUT)
        assert datagram.call is event.call and datagram.data == b"async"
        call.hangup()
        await asyncio.gather(
            _first(a, call_state(call, parley.CallState.ENDED), EVENT_TIMEOUT),
            _first(b, call_state(event.call, parley.CallState.ENDED), EVENT_TIMEOUT))

    try:
        asyncio.run(main())
    finally:
        a.close()
        b.close()


def test_close_ends_events_async(relay) -> None:
    """close() while an events_async() generator waits on the descriptor: it raises
    Error(CLOSED) at once; the generator's duplicate descriptor is closed with it."""
    import os

    ctx = make_context(relay)

    async def main() -> None:
        await _first(ctx, registered, REGISTER_TIMEOUT)
        fds_before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
        waiting = asyncio.Event()

        async def consume() -> None:
            async for _ in ctx.events_async():
                pass

        task = asyncio.ensure_future(consume())
        loop = asyncio.get_running_loop()
        loop.call_soon(waiting.set)
        await waiting.wait()
        start = time.monotonic()
        ctx.close()
        with pytest.raises(parley.Error) as info:
            await asyncio.wait_for(task, EVENT_TIMEOUT)
        assert info.value.code == parley.ErrorCode.CLOSED
        assert time.monotonic() - start < 2.0
        if fds_before is not None:  # the duplicate is gone (and parley's own, by close())
            assert set(os.listdir("/proc/self/fd")) <= fds_before | {"0", "1", "2"}

    try:
        asyncio.run(main())
    finally:
        ctx.close()
