"""parley: end-to-end encrypted voice calls (and relay rooms), from Python.

A thin ctypes binding of libparley's C ABI (include/parley/parley.h): no compiled
extension, so it works with any CPython that can load the shared library. Set
``PARLEY_LIBRARY`` to the full path of libparley.so, or install the library where
``ctypes.util.find_library("parley")`` finds it.

Quick start::

    import parley
    me = parley.Identity.generate()
    with parley.Context(me, "203.0.113.5:7350", relay_fingerprint=RELAY_FP) as ctx:
        ctx.wait_for(lambda e: e.relay_state == parley.RelayState.REGISTERED, timeout=10)
        call = ctx.call(PEER_FP)
        ctx.wait_for(lambda e: e.call is call and e.call_state == parley.CallState.ACTIVE, 30)
        call.push(pcm_bytes)            # capture thread
        out = call.pull(960)            # playout thread

Rooms (a group on the relay; parley does NOT encrypt room frames, seal them yourself)::

    room = ctx.join_room(parley.room_id_generate())   # share the id out of band
    room.send(seal(payload), sequence=1, timestamp=960)
    # the other members get EventType.ROOM_FRAME events: e.room, e.peer, e.data, ...
"""

from __future__ import annotations

from ._enums import (
    DATAGRAM_MAX,
    FINGERPRINT_HEX_LEN,
    PUBLIC_KEY_LEN,
    ROOM_ID_HEX_LEN,
    SEED_LEN,
    VERSION_NUM,
    CallState,
    ErrorCode,
    EventType,
    LogLevel,
    NetcheckFormat,
    Origin,
    Path,
    QualityMode,
    QualityReason,
    RelayState,
)
from . import _native
from ._native import lib as _lib
from .context import STUN_SERVERS_MAX, Call, CallStats, Context, Event
from .errors import Error, check as _check
from .identity import Identity, certificate_fingerprint, normalize_fingerprint
from .netcheck import netcheck
from .room import Room, RoomMember, room_id_generate

__version__ = "0.2.0"


def version() -> int:
    """The loaded library's version, 0xMMmmpp."""
    return int(_lib.version())


def version_string() -> str:
    """The loaded library's version, e.g. "0.2.0"."""
    return _lib.version_string().decode()


def library_path() -> str:
    """The path libparley was loaded from."""
    return _lib.path


def has_rooms() -> bool:
    """Whether the loaded libparley has rooms (Context.join_room, room_id_generate)."""
    return _native.has_rooms()


def set_log_level(level: int) -> None:
    """The most verbose level libparley logs (to stderr; default LogLevel.WARN)."""
    _check(_lib.log_set_level(int(level)), "parley_log_set_level")


__all__ = [
    "Call",
    "CallState",
    "CallStats",
    "Context",
    "DATAGRAM_MAX",
    "Error",
    "ErrorCode",
    "Event",
    "EventType",
    "FINGERPRINT_HEX_LEN",
    "Identity",
    "LogLevel",
    "NetcheckFormat",
    "Origin",
    "PUBLIC_KEY_LEN",
    "Path",
    "QualityMode",
    "QualityReason",
    "RelayState",
    "ROOM_ID_HEX_LEN",
    "Room",
    "RoomMember",
    "SEED_LEN",
    "STUN_SERVERS_MAX",
    "VERSION_NUM",
    "certificate_fingerprint",
    "has_rooms",
    "library_path",
    "netcheck",
    "normalize_fingerprint",
    "room_id_generate",
    "set_log_level",
    "version",
    "version_string",
]
