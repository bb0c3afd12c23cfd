"""parley.Room: membership of a group on the relay, and the frames its members exchange.

A room is a group on the relay: each member sends a frame once and the relay forwards it to
every other member. Unlike calls, **parley does not encrypt room frames**: the payload reaches
the other members exactly as given to ``Room.send`` and the relay can read it. Seal it first
with a key the members share (e.g. libsodium's crypto_secretbox, or PyNaCl's SecretBox, with
a key agreed over parley calls or the host's own channel), and open it on arrival.

Handles: parley_room_join hands out one ``parley_room *`` that the host owns until
parley_room_destroy. The Context gives each Room a token, attached to the handle as its user
data (parley_room_set_user_data), which every event about the room (ROOM_UPDATE, ROOM_FRAME,
a room's QUALITY_CHANGED) carries back: so each such event names the same Room object, and
Context.close() releases whatever rooms the host did not.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional

from ._enums import ROOM_ID_BUF_LEN, ErrorCode
from ._native import RoomMemberStruct, has_rooms, lib, room_id_buffer
from ._closeable import Closeable
from .errors import Error, check

if TYPE_CHECKING:  # pragma: no cover
    from .context import Context

_UINT32_MAX = 0xFFFFFFFF


def require_rooms(function: str) -> None:
    """Raises Error(INVALID_ARGUMENT) when the loaded libparley predates rooms."""
    if not has_rooms():
        raise Error(ErrorCode.INVALID_ARGUMENT,
                    "this libparley has no rooms (parley_room_* functions)", function)


def room_id_generate() -> str:
    """A fresh random room id (32 lowercase hex characters), to share with the members out
    of band. Anyone who knows the id can join the room: it is a name, not a key."""
    require_rooms("room_id_generate")
    buf = room_id_buffer()
    check(lib.room_id_generate(buf, ROOM_ID_BUF_LEN), "parley_room_id_generate")
    return buf.value.decode()


@dataclass(frozen=True)
class RoomMember:
    """One member of a room (parley_room_member): its identity and the stream its frames
    carry (ROOM_FRAME events' ``stream_id``)."""

    fingerprint: str
    stream_id: int


class Room(Closeable):
    """Membership of one room. Obtain it from Context.join_room(room_id).

    Membership arrives as ROOM_UPDATE events (``member_count``, our own ``stream_id``),
    frames from the other members as ROOM_FRAME events (``peer``, ``stream_id``,
    ``sequence``, ``timestamp``, ``data``). parley neither encrypts nor decodes the payloads:
    seal what you send, open what you receive.
    """

    def __init__(self, context: "Context", ptr: int, room_id: str, token: int = 0) -> None:
        self._context = context
        self._ptr: Optional[int] = ptr
        self._token = token  # this Room's key in the context (the handle's user data)
        self.id = room_id
        #: The application's own data for this room (parley never looks at it).
        self.tag: Any = None
        self._left = False
        self._stream_id: Optional[int] = None
        self._member_count = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def context(self) -> "Context":
        return self._context

    @property
    def stream_id(self) -> Optional[int]:
        """Our own stream in the room, from the last ROOM_UPDATE polled (None before it)."""
        return self._stream_id

    @property
    def member_count(self) -> int:
        """Members (ourselves included) as of the last ROOM_UPDATE polled (0 before it)."""
        return self._member_count

    @property
    def left(self) -> bool:
        """Whether leave() succeeded (or the room was released)."""
        return self._left

    @property
    def released(self) -> bool:
        return self._ptr is None

    @property
    def _handle(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise Error(ErrorCode.CLOSED, "the room was released", "Room")
        return ptr

    # -- requests ----------------------------------------------------------------------------

    def members(self) -> List[RoomMember]:
        """The members as of the latest ROOM_UPDATE the library received (ourselves included;
        this may be newer than the last event polled)."""
        capacity = 8
        with self._context._lock:
            handle = self._handle
            while True:
                out = (RoomMemberStruct * capacity)()
                count = ctypes.c_size_t(capacity)
                rc = lib.room_members(handle, out, ctypes.byref(count))
                if rc == ErrorCode.BUFFER_TOO_SMALL and count.value > capacity:
                    capacity = count.value  # the room grew between the calls: try again
                    continue
                check(rc, "parley_room_members")
                break
        return [RoomMember(out[i].fingerprint.decode(), int(out[i].stream_id))
                for i in range(count.value)]

    def send(self, payload: bytes, sequence: int, timestamp: int, profile: int = 0) -> None:
        """Sends one frame to the other members through the relay, unreliable and unordered.

        The payload is NOT encrypted by parley: the relay and every member see it exactly as
        given. Seal it with a key the members share before sending.

        Args:
            payload: the host's sealed bytes, at most DATAGRAM_MAX.
            sequence: one more per frame (uint32; wrap it yourself): the relay judges loss
                from the gaps.
            timestamp: the host's media timestamp (uint32), passed through to the members.
            profile: the voice profile (0 best .. 4) the room's last QUALITY_CHANGED named.

        Raises Error: NOT_A_MEMBER (not a member yet, or left), MESSAGE_TOO_LARGE,
        QUEUE_FULL, NOT_REGISTERED, INVALID_ARGUMENT (profile), CLOSED (the context is gone).
        """
        data = bytes(payload)
        for name, value in (("sequence", sequence), ("timestamp", timestamp)):
            if not 0 <= int(value) <= _UINT32_MAX:
                raise ValueError(f"{name} {value} is not a uint32 (wrap it: & 0xFFFFFFFF)")
        with self._context._lock:
            check(lib.room_send(self._handle, int(sequence), int(timestamp), int(profile),
                                data, len(data)), "parley_room_send")

    # -- lifetime ----------------------------------------------------------------------------

    def leave(self) -> None:
        """Leaves the room: no frame or update of it arrives afterwards (queued ones still
        may). The object stays usable for members() until released; the id may be joined
        again with Context.join_room (a new Room). Raises Error(NOT_A_MEMBER) if already
        left."""
        with self._context._lock:
            check(lib.room_leave(self._handle), "parley_room_leave")
            self._left = True

    def release(self) -> None:
        """Leaves the room if still in it and frees the handle (no event names it
        afterwards). Idempotent."""
        with self._context._lock:
            ptr, self._ptr = self._ptr, None
            if ptr is None:
                return
            self._left = True
            self._context._rooms.pop(self._token, None)
            lib.room_destroy(ptr)

    close = release

    def __repr__(self) -> str:
        state = "released" if self._ptr is None else "left" if self._left else (
            f"{self._member_count} members")
        return f"<parley.Room {self.id[:12]} {state}>"
