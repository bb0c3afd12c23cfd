"""Rooms through a real parley-relay on loopback: three contexts join a generated room, see
each other, exchange frames, leave and join again.

parley does not encrypt room frames (the relay forwards them as given), so the test seals
its payloads itself, with a toy stream cipher standing in for the host's real AEAD. Every wait
is on an event with a deadline, never a sleep.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import pytest

import parley
from conftest import EVENT_TIMEOUT, REGISTER_TIMEOUT, make_context, registered

pytestmark = pytest.mark.skipif(not parley.has_rooms(), reason="this libparley has no rooms")

FRAME_TIMEOUT = 2.0  # per attempt: frames are unreliable, a lost one is sent again
ATTEMPTS = 3


# -- the host's sealing (a stand-in: real hosts use crypto_secretbox or another AEAD) --------


def _keystream(key: bytes, nonce: int, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(key + nonce.to_bytes(8, "big") + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def seal(key: bytes, nonce: int, plaintext: bytes) -> bytes:
    return bytes(p ^ k for p, k in zip(plaintext, _keystream(key, nonce, len(plaintext))))


unseal = seal  # XOR is its own inverse


# -- helpers ---------------------------------------------------------------------------------


def room_update(room: parley.Room, members: int) -> Callable[[parley.Event], bool]:
    return lambda e: (e.type == parley.EventType.ROOM_UPDATE and e.room is room
                      and e.member_count == members)


def send_frame(
    sender: parley.Room,
    receivers: Sequence[Tuple[parley.Context, parley.Room]],
    key: bytes,
    plaintext: bytes,
    first_sequence: int,
) -> Tuple[Dict[int, Tuple[int, bytes]], Dict[parley.Room, parley.Event]]:
    """Sends `plaintext` sealed from `sender` until every receiver got a ROOM_FRAME of it
    (a new sequence per attempt). Returns ({sequence: (timestamp, sealed)}, {room: event})."""
    sent: Dict[int, Tuple[int, bytes]] = {}
    got: Dict[parley.Room, parley.Event] = {}
    for attempt in range(ATTEMPTS):
        sequence = first_sequence + attempt
        timestamp = 960 * sequence
        sealed = seal(key, sequence, plaintext)
        sender.send(sealed, sequence, timestamp)
        sent[sequence] = (timestamp, sealed)
        for ctx, room in receivers:
            if room in got:
                continue
            try:
                got[room] = ctx.wait_for(
                    lambda e, room=room: (e.type == parley.EventType.ROOM_FRAME
                                          and e.room is room and e.sequence in sent),
                    FRAME_TIMEOUT)
            except TimeoutError:
                pass  # lost: the next attempt sends it again
        if len(got) == len(receivers):
            break
    assert len(got) == len(receivers), f"a frame never arrived in {ATTEMPTS} attempts"
    return sent, got


def check_frames(sender_ctx: parley.Context, sender: parley.Room, key: bytes, plaintext: bytes,
                 sent: Dict[int, Tuple[int, bytes]], got: Dict[parley.Room, parley.Event]) -> None:
    for room, event in got.items():
        timestamp, sealed = sent[event.sequence]
        assert event.call is None
        assert event.data == sealed  # byte for byte as sent: parley does not touch it
        assert event.peer == sender_ctx.fingerprint
        assert event.stream_id == sender.stream_id
        assert event.timestamp == timestamp
        assert unseal(key, event.sequence, event.data) == plaintext
        assert event.profile is None and event.member_count is None


@pytest.fixture
def trio(relay) -> Iterator[List[parley.Context]]:
    """Three contexts registered with the relay."""
    contexts = [make_context(relay) for _ in range(3)]
    try:
        for ctx in contexts:
            ctx.wait_for(registered, REGISTER_TIMEOUT)
        yield contexts
    finally:
        for ctx in contexts:
            ctx.close()


# -- tests -----------------------------------------------------------------------------------


def test_room_id_generate() -> None:
    first, second = parley.room_id_generate(), parley.room_id_generate()
    assert re.fullmatch(r"[0-9a-f]{32}", first) and len(first) == parley.ROOM_ID_HEX_LEN
    assert first != second


def test_three_members_frames_leave_and_rejoin(trio) -> None:
    a, b, c = trio
    room_id = parley.room_id_generate()
    rooms = [ctx.join_room(room_id) for ctx in trio]
    ra, rb, rc = rooms
    assert [ctx.rooms for ctx in trio] == [[ra], [rb], [rc]]
    assert all(room.id == room_id and not room.left for room in rooms)

    # Everyone sees three members, and its own stream.
    for ctx, room in zip(trio, rooms):
        update = ctx.wait_for(room_update(room, 3), EVENT_TIMEOUT)
        assert update.call is None and update.stream_id
        assert room.stream_id == update.stream_id and room.member_count == 3
    streams = {ctx.fingerprint: room.stream_id for ctx, room in zip(trio, rooms)}
    assert len(set(streams.values())) == 3, streams
    for room in rooms:
        members = room.members()
        assert all(isinstance(m, parley.RoomMember) for m in members)
        assert len(members) == 3
        assert {(m.fingerprint, m.stream_id) for m in members} == set(streams.items())

    # A sealed frame from A reaches B and C as sent, named by sender, stream, sequence and
    # timestamp; A does not get its own frame back.
    key = hashlib.sha256(room_id.encode()).digest()  # agreed out of band, in real life
    plaintext = b"game state \x00\x01\x02 " + bytes(range(256))
    sent, got = send_frame(ra, [(b, rb), (c, rc)], key, plaintext, first_sequence=1)
    check_frames(a, ra, key, plaintext, sent, got)
    assert not [e for e in a.events(0) if e.type == parley.EventType.ROOM_FRAME]
    largest = bytes(range(256)) * 4 + b"\xff" * (parley.DATAGRAM_MAX - 1024)
    sent, got = send_frame(ra, [(b, rb), (c, rc)], key, largest, first_sequence=10)
    check_frames(a, ra, key, largest, sent, got)

    # Requests the C API refuses, and values Python refuses before they cross.
    with pytest.raises(parley.Error) as info:
        ra.send(b"x" * (parley.DATAGRAM_MAX + 1), 100, 0)
    assert info.value.code == parley.ErrorCode.MESSAGE_TOO_LARGE
    with pytest.raises(parley.Error) as info:
        ra.send(b"x", 100, 0, profile=5)
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT
    for bad in (-1, 1 << 32):
        with pytest.raises(ValueError):
            ra.send(b"x", bad, 0)
        with pytest.raises(ValueError):
            ra.send(b"x", 100, bad)
    with pytest.raises(parley.Error) as info:  # in it already
        a.join_room(room_id)
    assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT

    # C leaves: A and B see two members; leaving again or sending is refused.
    rc.leave()
    assert rc.left and not rc.released
    for ctx, room in ((a, ra), (b, rb)):
        ctx.wait_for(room_update(room, 2), EVENT_TIMEOUT)
        assert room.member_count == 2
    assert {m.fingerprint for m in ra.members()} == {a.fingerprint, b.fingerprint}
    with pytest.raises(parley.Error) as info:
        rc.leave()
    assert info.value.code == parley.ErrorCode.NOT_A_MEMBER
    assert info.value.name == "PARLEY_ERR_NOT_A_MEMBER"
    with pytest.raises(parley.Error) as info:
        rc.send(b"after leaving", 50, 0)
    assert info.value.code == parley.ErrorCode.NOT_A_MEMBER

    # C joins again: a new Room; everyone sees three again, and frames flow both ways.
    again = c.join_room(room_id)
    assert again is not rc and set(c.rooms) == {rc, again}
    for ctx, room in ((a, ra), (b, rb), (c, again)):
        ctx.wait_for(room_update(room, 3), EVENT_TIMEOUT)
    assert {(m.fingerprint, m.stream_id) for m in rb.members()} == {
        (a.fingerprint, ra.stream_id), (b.fingerprint, rb.stream_id),
        (c.fingerprint, again.stream_id)}
    # Releasing the old, left handle does not touch the new membership.
    rc.release()
    assert rc.released and c.rooms == [again]
    sent, got = send_frame(again, [(a, ra), (b, rb)], key, b"back again", first_sequence=1)
    check_frames(c, again, key, b"back again", sent, got)
    sent, got = send_frame(rb, [(a, ra), (c, again)], key, b"welcome", first_sequence=1)
    check_frames(b, rb, key, b"welcome", sent, got)

    # Released (context manager): leaves, and the others see it.
    with again:
        pass
    assert again.released and c.rooms == []
    for ctx, room in ((a, ra), (b, rb)):
        ctx.wait_for(room_update(room, 2), EVENT_TIMEOUT)
    with pytest.raises(parley.Error) as info:
        again.send(b"x", 1, 0)
    assert info.value.code == parley.ErrorCode.CLOSED
    with pytest.raises(parley.Error) as info:
        again.members()
    assert info.value.code == parley.ErrorCode.CLOSED
    again.release()  # idempotent


def test_invalid_room_ids(pair) -> None:
    a, _ = pair
    for bad in ("not-a-room", "zz" * 16, "ab" * 15, "ab" * 17, "", " " + "ab" * 16):
        with pytest.raises(parley.Error) as info:
            a.join_room(bad)
        assert info.value.code == parley.ErrorCode.INVALID_ARGUMENT, bad
        assert info.value.function == "parley_room_join"
    with pytest.raises(TypeError):
        a.join_room(12345)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        a.join_room("ab" * 8 + "\0" + "ab" * 7 + "a")
    assert a.rooms == []


def test_room_id_is_case_insensitive(pair) -> None:
    a, b = pair
    room_id = parley.room_id_generate()
    ra = a.join_room(room_id.upper())
    rb = b.join_room(room_id)
    assert ra.id == rb.id == room_id
    a.wait_for(room_update(ra, 2), EVENT_TIMEOUT)
    b.wait_for(room_update(rb, 2), EVENT_TIMEOUT)


def test_close_releases_rooms(relay) -> None:
    a = make_context(relay)
    b = make_context(relay)
    try:
        a.wait_for(registered, REGISTER_TIMEOUT)
        b.wait_for(registered, REGISTER_TIMEOUT)
        room_id = parley.room_id_generate()
        ra = a.join_room(room_id)
        rb = b.join_room(room_id)
        a.wait_for(room_update(ra, 2), EVENT_TIMEOUT)
        b.wait_for(room_update(rb, 2), EVENT_TIMEOUT)
        b.close()
        assert rb.released and rb.left and b.rooms == []
        a.wait_for(room_update(ra, 1), EVENT_TIMEOUT)  # the relay dropped B's membership
        assert [(m.fingerprint, m.stream_id) for m in ra.members()] == [
            (a.fingerprint, ra.stream_id)]
        with pytest.raises(parley.Error) as info:
            rb.send(b"x", 1, 0)
        assert info.value.code == parley.ErrorCode.CLOSED
        with pytest.raises(parley.Error) as info:
            b.join_room(room_id)
        assert info.value.code == parley.ErrorCode.CLOSED
    finally:
        a.close()
        b.close()
    assert ra.released
