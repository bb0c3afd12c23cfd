"""A real call between two contexts through a parley-relay process on loopback."""

from __future__ import annotations

import sys
import time

import pytest

import parley
from parley.testing import dominant_frequency, level_db, rms, rms_float, sine, sine_float
from conftest import (EVENT_TIMEOUT, REGISTER_TIMEOUT, call_state, connect, make_context,
                      registered)

RATE = 48000
CHUNK = RATE // 50  # 20 ms
TONE_HZ = 440.0
SECONDS = 3.0
ANALYSED = int(1.5 * RATE)  # the last 1.5 s of what B heard


def _ended_codes() -> tuple:
    # An ended call (0.2.0: always CALL_ENDED; push/pull say nothing more specific).
    return (parley.ErrorCode.CALL_ENDED,)


def test_tone_datagram_stats_hangup(pair) -> None:
    a, b = pair
    call_a, call_b = connect(a, b)

    # The same Python object for the same parley_call*, on every event and in the registry.
    assert call_b in b.calls and call_a in a.calls
    assert call_a.peer == b.fingerprint and call_b.peer == a.fingerprint
    assert call_a.state == parley.CallState.ACTIVE and call_b.state == parley.CallState.ACTIVE
    assert not call_a.incoming and call_b.incoming

    # ~3 s of a 440 Hz tone A -> B in 20 ms chunks, paced by the wall clock (this is the
    # audio clock, not synchronisation); B pulls one chunk per tick like a sound card.
    heard = bytearray()
    events_a, events_b = [], []
    start = time.monotonic()
    tick = 0
    while tick * CHUNK < SECONDS * RATE:
        taken = call_a.push(sine(TONE_HZ, RATE, tick * CHUNK, CHUNK))
        assert 0 <= taken <= CHUNK
        heard += call_b.pull(CHUNK)
        events_a.extend(a.events(0))
        events_b.extend(b.events(0))
        tick += 1
        delay = start + tick * CHUNK / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for event in events_a + events_b:
        assert not (event.type == parley.EventType.CALL_STATE
                    and event.call_state == parley.CallState.ENDED), event
    assert len(heard) == 2 * tick * CHUNK

    tail = bytes(heard[-2 * ANALYSED:])
    frequency = dominant_frequency(tail, RATE)
    level = rms(tail)
    print(f"\nB heard: dominant {frequency:.2f} Hz, RMS {level:.0f} "
          f"(sent amplitude 8000, RMS {8000 / 2 ** 0.5:.0f})")
    assert abs(frequency - TONE_HZ) <= 10, frequency
    assert level > 1000, level  # silence / comfort noise is far below this

    # An application datagram A -> B arrives byte for byte. Datagrams are unreliable, so a
    # lost one is sent again (each attempt waits on the event with its own deadline).
    payload = bytes(range(256)) + b"parley datagram"
    for attempt in range(3):
        call_a.send_datagram(payload)
        try:
            event = b.wait_for(lambda e: e.type == parley.EventType.DATAGRAM, 2.0)
            break
        except TimeoutError:
            if attempt == 2:
                raise
    assert event.call is call_b
    assert event.data == payload
    assert event.peer == a.fingerprint

    with pytest.raises(parley.Error) as info:
        call_a.send_datagram(b"x" * (parley.DATAGRAM_MAX + 1))
    assert info.value.code == parley.ErrorCode.MESSAGE_TOO_LARGE

    stats_a = call_a.stats()
    stats_b = call_b.stats()
    print(f"A: {stats_a}\nB: {stats_b}")
    assert stats_a.frames_sent > 0
    assert stats_a.audio_bytes_sent > 0
    assert stats_b.frames_received > 0
    assert stats_b.frames_decoded > 0
    assert isinstance(stats_a.path, parley.Path)
    assert stats_a.muted is False
    # Direct is on here: the first ICE run counts as an attempt from the moment of ACTIVE.
    for stats in (stats_a, stats_b):
        assert stats.direct_attempts >= 1, stats
        assert isinstance(stats.direct_error, int) and stats.direct_error <= 0, stats
        assert stats.direct_lost >= 0, stats

    call_a.muted = True
    assert call_a.muted
    assert call_a.stats().muted is True
    call_a.muted = False

    # A hangs up: B sees ENDED with error 0 (a normal hangup), A sees ENDED too.
    call_a.hangup()
    ended = b.wait_for(call_state(call_b, parley.CallState.ENDED), EVENT_TIMEOUT)
    assert ended.error == 0 and ended.error == parley.ErrorCode.OK
    assert ended.origin == parley.Origin.PEER, ended  # A's words, carried by the relay
    own_end = a.wait_for(call_state(call_a, parley.CallState.ENDED), EVENT_TIMEOUT)
    assert own_end.origin == parley.Origin.LOCAL, own_end
    assert call_b.state == parley.CallState.ENDED and call_b.end_error == 0

    # An ended call: push refuses, pull raises (and the C side wrote silence).
    with pytest.raises(parley.Error) as info:
        call_a.push(sine(TONE_HZ, RATE, 0, CHUNK))
    assert info.value.code in _ended_codes()
    with pytest.raises(parley.Error) as info:
        call_b.pull(CHUNK)
    assert info.value.code in _ended_codes()
    with pytest.raises(parley.Error):
        call_a.hangup()

    call_a.release()
    call_b.release()
    assert call_a.released and call_a not in a.calls
    with pytest.raises(parley.Error) as info:
        call_a.push(b"\0\0" * CHUNK)
    assert info.value.code == parley.ErrorCode.CLOSED
    call_a.release()  # idempotent


def test_float_audio_has_the_level_of_int16(pair) -> None:
    """A 440 Hz tone pushed as float32 on one call (push_audio_float, pulled with
    pull_audio_float) and as int16 on another (push/pull), at the same level, at the same
    time: B hears both at the same level (within 0.1 dB) once the jitter buffers settled."""
    import array

    a, b = pair
    float_a, float_b = connect(a, b)
    int_a, int_b = connect(a, b)
    heard_float = array.array("f")
    heard_int = bytearray()
    start = time.monotonic()
    tick = 0
    while tick * CHUNK < SECONDS * RATE:
        assert float_a.push_audio_float(sine_float(TONE_HZ, RATE, tick * CHUNK, CHUNK)) == CHUNK
        assert int_a.push(sine(TONE_HZ, RATE, tick * CHUNK, CHUNK)) == CHUNK
        heard_float.extend(float_b.pull_audio_float(CHUNK))
        heard_int += int_b.pull(CHUNK)
        for ctx in (a, b):
            for event in ctx.events(0):
                assert not (event.type == parley.EventType.CALL_STATE
                            and event.call_state == parley.CallState.ENDED), event
        tick += 1
        delay = start + tick * CHUNK / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    settled = RATE // 2  # the first 0.5 s: the calls start and the jitter buffers fill
    float_tail = heard_float[settled:]
    int_tail = bytes(heard_int[2 * settled:])
    assert len(float_tail) == len(int_tail) // 2 > RATE
    float_db = level_db(rms_float(float_tail))
    int_db = level_db(rms(int_tail), 32768.0)
    sent_db = level_db(8000 / 2 ** 0.5, 32768.0)
    print(f"\nB heard: float32 path {float_db:.3f} dBFS, int16 path {int_db:.3f} dBFS "
          f"(sent {sent_db:.3f} dBFS)")
    assert abs(float_db - int_db) <= 0.1, (float_db, int_db)
    assert abs(int_db - sent_db) <= 3.0, (int_db, sent_db)  # the tone, not silence
    int16_view = array.array("h", int_tail)
    assert abs(dominant_frequency(int16_view.tobytes(), RATE) - TONE_HZ) <= 10

    # Buffers: array('f'), memoryview 'f', raw float32 bytes in; array('f') and numpy-free
    # memoryviews out; int16 buffers are refused by the float functions.
    tone = sine_float(TONE_HZ, RATE, 0, CHUNK)
    assert float_a.push_audio_float(memoryview(tone)) == CHUNK
    assert float_a.push_audio_float(tone.tobytes() if sys.byteorder == "little" else tone) >= 0
    with pytest.raises(TypeError):
        float_a.push_audio_float(array.array("h", [0] * CHUNK))
    out = array.array("f", [0.0] * CHUNK)
    float_b.pull_audio_float_into(out)
    float_b.pull_audio_float_into(memoryview(out))
    with pytest.raises(TypeError):
        float_b.pull_audio_float_into(array.array("h", [0] * CHUNK))
    for call in (float_a, int_a):
        call.hangup()
    for call in (float_b, int_b):
        b.wait_for(call_state(call, parley.CallState.ENDED), EVENT_TIMEOUT)
    with pytest.raises(parley.Error) as info:  # ended: push refuses
        float_a.push_audio_float(tone)
    assert info.value.code == parley.ErrorCode.CALL_ENDED


def test_call_tag_and_user_data(pair) -> None:
    """Each Call's token is its handle's user data (parley_call_set_user_data), which names
    it in every event; `tag` is the application's own."""
    from parley import _native

    a, b = pair
    call_a, call_b = connect(a, b)
    assert call_a.tag is None
    call_a.tag = {"contact": "bob"}
    for call in (call_a, call_b):
        assert _native.lib.call_user_data(call._ptr) == call._token != 0
    assert call_a._token != call_b._token
    call_a.send_datagram(b"tagged")
    event = b.wait_for(lambda e: e.type == parley.EventType.DATAGRAM, EVENT_TIMEOUT)
    assert event.call is call_b
    call_b.hangup()
    ended = a.wait_for(call_state(call_a, parley.CallState.ENDED), EVENT_TIMEOUT)
    assert ended.call is call_a and ended.call.tag == {"contact": "bob"}


def test_relay_only_call_stats(relay) -> None:
    """With disable_direct no direct attempt is made, and the stats say why there is no
    direct path (ICE_FAILED) without counting a lost one."""
    a = make_context(relay, disable_direct=True)
    b = make_context(relay, disable_direct=True)
    try:
        a.wait_for(registered, REGISTER_TIMEOUT)
        b.wait_for(registered, REGISTER_TIMEOUT)
        call_a, call_b = connect(a, b)
        for call in (call_a, call_b):
            stats = call.stats()
            assert stats.path == parley.Path.RELAY, stats
            assert stats.direct_attempts == 0, stats
            assert stats.direct_error == parley.ErrorCode.ICE_FAILED, stats
            assert isinstance(stats.direct_error, parley.ErrorCode), stats
            assert stats.direct_lost == 0, stats
            assert stats.time_to_direct_ms == -1, stats
        call_a.hangup()
        b.wait_for(call_state(call_b, parley.CallState.ENDED), EVENT_TIMEOUT)
    finally:
        a.close()
        b.close()


def test_reject(pair) -> None:
    a, b = pair
    call_a = a.call(b.fingerprint)
    incoming = b.wait_for(lambda e: e.type == parley.EventType.INCOMING_CALL, EVENT_TIMEOUT)
    assert incoming.call is not None and incoming.call.state == parley.CallState.INCOMING
    incoming.call.reject()
    ended = a.wait_for(call_state(call_a, parley.CallState.ENDED), EVENT_TIMEOUT)
    assert ended.error == parley.ErrorCode.CALL_REJECTED
    assert call_a.end_error == parley.ErrorCode.CALL_REJECTED
    assert ended.origin == parley.Origin.PEER and call_a.end_origin == parley.Origin.PEER
    with pytest.raises(parley.Error):  # not active: no stats
        call_a.stats()
    with pytest.raises(parley.Error) as info:  # rejected already: no second answer
        incoming.call.accept()
    assert info.value.code in (parley.ErrorCode.WRONG_CALL_STATE, parley.ErrorCode.CALL_ENDED)


def test_call_state_errors(pair) -> None:
    """The 0.2.0 codes: a call not active yet has no stats and takes no datagram
    (CALL_NOT_ACTIVE); an outgoing call cannot be accepted (WRONG_CALL_STATE)."""
    a, b = pair
    call_a = a.call(b.fingerprint)
    incoming = b.wait_for(lambda e: e.type == parley.EventType.INCOMING_CALL, EVENT_TIMEOUT)
    with pytest.raises(parley.Error) as info:
        call_a.accept()
    assert info.value.code == parley.ErrorCode.WRONG_CALL_STATE
    assert info.value.name == "PARLEY_ERR_WRONG_CALL_STATE"
    for call in (call_a, incoming.call):
        with pytest.raises(parley.Error) as info:
            call.stats()
        assert info.value.code == parley.ErrorCode.CALL_NOT_ACTIVE, info.value
        with pytest.raises(parley.Error) as info:
            call.send_datagram(b"too early")
        assert info.value.code == parley.ErrorCode.CALL_NOT_ACTIVE, info.value
    call_a.hangup()
    b.wait_for(call_state(incoming.call, parley.CallState.ENDED), EVENT_TIMEOUT)


def test_unknown_peer_ends_the_call(pair) -> None:
    a, _ = pair
    with parley.Identity.generate() as nobody:
        call = a.call(nobody.fingerprint)
    ended = a.wait_for(call_state(call, parley.CallState.ENDED), EVENT_TIMEOUT)
    assert ended.error == parley.ErrorCode.PEER_UNAVAILABLE
    assert ended.origin == parley.Origin.RELAY, ended  # the relay's words: untrusted text


def test_numpy_audio(pair) -> None:
    np = pytest.importorskip("numpy")
    a, b = pair
    call_a, call_b = connect(a, b)
    tone = np.frombuffer(sine(TONE_HZ, RATE, 0, CHUNK), dtype="<i2").astype(np.int16)
    assert call_a.push(tone) == CHUNK
    with pytest.raises(TypeError):
        call_a.push(tone.astype(np.float32))
    out = call_b.pull(CHUNK, numpy=True)
    assert out.dtype == np.int16 and out.shape == (CHUNK,)
    buf = np.zeros(CHUNK, dtype=np.int16)
    call_b.pull_into(buf)
    raw = bytearray(2 * CHUNK)
    call_b.pull_into(raw)
    call_a.hangup()
    b.wait_for(call_state(call_b, parley.CallState.ENDED), EVENT_TIMEOUT)


def test_close_releases_calls(relay) -> None:
    from conftest import make_context, registered

    a = make_context(relay)
    b = make_context(relay)
    a.wait_for(registered, EVENT_TIMEOUT)
    b.wait_for(registered, EVENT_TIMEOUT)
    call_a, call_b = connect(a, b)
    a.close()
    assert call_a.released and a.closed
    b.wait_for(call_state(call_b, parley.CallState.ENDED), EVENT_TIMEOUT)
    with pytest.raises(parley.Error) as info:
        a.call(b.fingerprint)
    assert info.value.code == parley.ErrorCode.CLOSED
    b.close()
    assert call_b.released
    a.close()  # idempotent


def untrusted(event: parley.Event) -> bool:
    return (event.type == parley.EventType.RELAY_STATE
            and event.relay_state == parley.RelayState.UNTRUSTED)


def test_relay_trust_is_the_hosts_decision(relay) -> None:
    """No relay_fingerprint: the context reports the identity the relay presents and waits
    (nothing registers) until the host trusts it; then it registers and keeps that pin."""
    from parley import _native
    from conftest import registered

    if _native.lib.context_trust_relay is None:
        pytest.skip("this libparley has no parley_context_trust_relay")
    with parley.Identity.generate() as me, parley.Context(me, relay.address) as ctx:
        seen = []
        event = ctx.wait_for(untrusted, EVENT_TIMEOUT, on_other=seen.append)
        assert event.peer == relay.fingerprint and event.call is None
        assert event.origin == parley.Origin.LOCAL
        assert ctx.relay_state == parley.RelayState.UNTRUSTED
        assert not any(registered(e) for e in seen), seen
        with pytest.raises(parley.Error) as info:  # none configured, none trusted yet
            ctx.relay_fingerprint
        assert info.value.code == parley.ErrorCode.NOT_REGISTERED
        with pytest.raises(parley.Error) as info:  # still undecided: not registered
            ctx.call("ab" * 32)
        assert info.value.code == parley.ErrorCode.NOT_REGISTERED

        ctx.trust_relay(event.peer)
        ctx.wait_for(registered, EVENT_TIMEOUT)
        assert ctx.relay_fingerprint == relay.fingerprint
    with parley.Identity.generate() as me, \
            parley.Context(me, "127.0.0.1:9", relay_fingerprint=relay.fingerprint) as ctx:
        assert ctx.relay_fingerprint == relay.fingerprint  # pinned: known before any contact


def test_trusting_another_identity_than_the_relays_is_refused(relay) -> None:
    from parley import _native

    if _native.lib.context_trust_relay is None:
        pytest.skip("this libparley has no parley_context_trust_relay")
    with parley.Identity.generate() as me, parley.Identity.generate() as other, \
            parley.Context(me, relay.address) as ctx:
        ctx.wait_for(untrusted, EVENT_TIMEOUT)
        ctx.trust_relay(other.fingerprint)  # not the relay's
        event = ctx.wait_for(lambda e: e.relay_state in (parley.RelayState.BACKOFF,
                                                         parley.RelayState.REGISTERED),
                             EVENT_TIMEOUT)
        assert event.relay_state == parley.RelayState.BACKOFF, event
        assert event.error == parley.ErrorCode.PEER_IDENTITY, event
        assert ctx.relay_fingerprint == other.fingerprint  # the host's pin, kept


def test_trust_relay_refuses_a_malformed_fingerprint(relay) -> None:
    from parley import _native

    if _native.lib.context_trust_relay is None:
        pytest.skip("this libparley has no parley_context_trust_relay")
    with parley.Identity.generate() as me, parley.Context(me, relay.address) as ctx:
        for bad in ("abc", relay.fingerprint[:-1] + "g", relay.fingerprint + "0"):
            with pytest.raises(parley.Error) as info:
                ctx.trust_relay(bad)
            assert info.value.code == parley.ErrorCode.FINGERPRINT_INVALID
            assert info.value.name == "PARLEY_ERR_FINGERPRINT_INVALID"
        with pytest.raises(parley.Error) as info:  # nothing was pinned by those
            ctx.relay_fingerprint
        assert info.value.code == parley.ErrorCode.NOT_REGISTERED
    with pytest.raises(parley.Error) as info:  # closed
        ctx.trust_relay(relay.fingerprint)
    assert info.value.code == parley.ErrorCode.CLOSED


def test_quality_cap(relay) -> None:
    """best_profile (parley_context_config.quality_best_profile): calls start at the cap and
    no change ever goes better than it."""
    from conftest import REGISTER_TIMEOUT, make_context, registered

    a = make_context(relay, best_profile=3)
    b = make_context(relay, best_profile=3)
    try:
        a.wait_for(registered, REGISTER_TIMEOUT)
        b.wait_for(registered, REGISTER_TIMEOUT)
        call_a, call_b = connect(a, b)
        assert call_a.stats().profile == 3 and call_b.stats().profile == 3
        start, n = time.monotonic(), 0
        while time.monotonic() - start < 3.0:
            call_a.push(sine(TONE_HZ, RATE, n, CHUNK))
            call_b.push(sine(TONE_HZ, RATE, n, CHUNK))
            n += CHUNK
            call_a.pull(CHUNK)
            call_b.pull(CHUNK)
            for ctx in (a, b):
                while (e := ctx.poll()) is not None:
                    if e.type == parley.EventType.QUALITY_CHANGED:
                        assert e.profile >= 3, e
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))  # audio pacing
        assert call_a.stats().profile >= 3 and call_b.stats().profile >= 3
        call_a.hangup()
    finally:
        a.close()
        b.close()


def _datagram_arrives(sender: parley.Call, receiver: parley.Context,
                      receiver_call: parley.Call, payload: bytes, others: list) -> None:
    """Sends `payload` on `sender` until `receiver` reports it on `receiver_call`. Datagrams
    are unreliable, so a lost one is sent again; each attempt waits on the event with its own
    deadline. Other events are appended to `others`."""
    for _ in range(10):
        sender.send_datagram(payload)
        try:
            event = receiver.wait_for(
                lambda e: e.type == parley.EventType.DATAGRAM and e.data == payload, 0.5,
                on_other=others.append)
        except TimeoutError:
            continue
        assert event.call is receiver_call
        return
    pytest.fail(f"datagram {payload!r} never arrived")


def test_network_changed_keeps_the_call(pair) -> None:
    """network_changed mid-call (what a host's network monitor does): it returns at once, the
    call stays active and datagrams keep arriving both ways while ICE restarts; once the
    context is closed it raises CLOSED."""
    a, b = pair
    call_a, call_b = connect(a, b)
    others_a: list = []
    others_b: list = []
    _datagram_arrives(call_a, b, call_b, b"before", others_b)
    received_before = call_b.stats().frames_received

    assert a.network_changed() is None
    for i in range(3):  # on the old path at first, then wherever the restart settles
        _datagram_arrives(call_a, b, call_b, b"a->b after %d" % i, others_b)
        _datagram_arrives(call_b, a, call_a, b"b->a after %d" % i, others_a)
    b.network_changed()  # the other side too, and twice in a row (a restart during one)
    b.network_changed()
    for i in range(3):
        _datagram_arrives(call_b, a, call_a, b"b->a after b %d" % i, others_a)
        _datagram_arrives(call_a, b, call_b, b"a->b after b %d" % i, others_b)

    for event in others_a + others_b:
        assert not (event.type == parley.EventType.CALL_STATE
                    and event.call_state == parley.CallState.ENDED), event
    assert call_a.state == parley.CallState.ACTIVE
    assert call_b.state == parley.CallState.ACTIVE
    stats_b = call_b.stats()
    assert stats_b.frames_received > received_before, (received_before, stats_b)
    paths = [(e.path_from, e.path) for e in others_a + others_b
             if e.type == parley.EventType.PATH_CHANGED]
    print(f"\nafter network_changed: A {call_a.stats()}\nB {stats_b}\npath changes: {paths}")

    call_a.hangup()
    b.wait_for(call_state(call_b, parley.CallState.ENDED), EVENT_TIMEOUT)
    a.close()
    with pytest.raises(parley.Error) as info:
        a.network_changed()
    assert info.value.code == parley.ErrorCode.CLOSED
