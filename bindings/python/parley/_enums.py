"""Enumerations and constants mirrored from include/parley/parley.h.

The header's numbering is part of the ABI and only ever grows, so these IntEnums are
append-only too. A newer libparley may hand out a value this module does not know yet;
``enum_or_int`` keeps such a value as a plain int instead of failing, so an old binding keeps
working against a newer library.
"""

from __future__ import annotations

import enum
from typing import Type, TypeVar, Union

# The header version this binding mirrors (PARLEY_VERSION_*).
VERSION_MAJOR = 0
VERSION_MINOR = 2
VERSION_PATCH = 0
VERSION_NUM = (VERSION_MAJOR << 16) | (VERSION_MINOR << 8) | VERSION_PATCH

SEED_LEN = 32
PUBLIC_KEY_LEN = 32
FINGERPRINT_HEX_LEN = 64
FINGERPRINT_BUF_LEN = 65
DATAGRAM_MAX = 1100
ROOM_ID_HEX_LEN = 32
ROOM_ID_BUF_LEN = 33
NETCHECK_REPORT_MAX = 16384

SAVE_OVERWRITE = 0x1


class ErrorCode(enum.IntEnum):
    """parley_error: 0 or a negative PARLEY_ERR_* code (member names drop PARLEY_ERR_)."""

    OK = 0
    INVALID_ARGUMENT = -1
    NO_MEMORY = -2
    INTERNAL = -3
    BUFFER_TOO_SMALL = -4
    IO = -5
    SEED_FILE_NOT_FOUND = -6
    SEED_FILE_INVALID = -7
    SEED_FILE_PERMISSIONS = -8
    SEED_FILE_EXISTS = -9
    CERT_MALFORMED = -10
    CERT_KEY_TYPE = -11
    FINGERPRINT_INVALID = -12
    CRYPTO = -13
    CLOSED = -14
    STUN_MALFORMED = -15
    STUN_UNKNOWN_ATTRIBUTE = -16
    STUN_INTEGRITY = -17
    STUN_FINGERPRINT = -18
    TIMEOUT = -19
    ADDRESS_INVALID = -20
    CANDIDATE_INVALID = -21
    SOCKET = -22
    PEER_IDENTITY = -23
    TRANSPORT = -24
    MESSAGE_TOO_LARGE = -25
    QUEUE_FULL = -26
    SIGNAL_MALFORMED = -27
    SIGNAL_UNKNOWN_TYPE = -28
    SIGNAL_VERSION = -29
    MEDIA_MALFORMED = -30
    PEER_UNAVAILABLE = -31
    CALL_NOT_FOUND = -32
    RATE_LIMITED = -33
    LIMIT_REACHED = -34
    CALL_REJECTED = -35
    NOT_REGISTERED = -36
    MEDIA_AUTH = -37
    MEDIA_REPLAY = -38
    MEDIA_KEY = -39
    ICE_FAILED = -40
    CODEC = -41
    AUDIO_FORMAT = -42
    WRONG_THREAD = -43
    INVALID_HANDLE = -44
    CALL_ENDED = -45
    NO_PATH = -46
    NAME_NOT_FOUND = -47
    NO_USABLE_ADDRESS = -48
    ADDRESS_FAMILY = -49
    ALL_ADDRESSES_FAILED = -50
    NOT_A_MEMBER = -51  # room send/leave when not a member (CALL_NOT_FOUND before 0.2)
    CALL_NOT_ACTIVE = -52  # send_datagram/stats before ACTIVE (CALL_NOT_FOUND before 0.2)
    WRONG_CALL_STATE = -53  # accept/reject of an outgoing or answered call (likewise)

    @property
    def c_name(self) -> str:
        """The header's spelling, e.g. "PARLEY_ERR_FINGERPRINT_INVALID"."""
        return "PARLEY_OK" if self == 0 else "PARLEY_ERR_" + self.name


class LogLevel(enum.IntEnum):
    OFF = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4
    TRACE = 5


class EventType(enum.IntEnum):
    NONE = 0
    RELAY_STATE = 1
    INCOMING_CALL = 2
    CALL_STATE = 3
    DATAGRAM = 4
    PATH_CHANGED = 5
    ERROR = 6
    QUALITY_CHANGED = 7
    RELAY_TRUSTED = 8  # no longer raised: the host decides (RelayState.UNTRUSTED, trust_relay)
    ROOM_UPDATE = 9
    ROOM_FRAME = 10


class QualityMode(enum.IntEnum):
    """parley_quality_mode (PARLEY_QUALITY_MODE_*)."""

    ADAPTIVE = 0
    FIXED = 1


class QualityReason(enum.IntEnum):
    """parley_quality_reason (PARLEY_QUALITY_REASON_*)."""

    NONE = 0  # not in the header: the stats' "no change yet"
    LOSS = 1
    CONGESTION = 2
    JITTER = 3
    RECOVERED = 4
    DIRECTIVE = 5


class CallState(enum.IntEnum):
    INVITING = 1
    RINGING = 2
    INCOMING = 3
    ACTIVE = 4
    ENDED = 5


class RelayState(enum.IntEnum):
    IDLE = 0
    CONNECTING = 1
    REGISTERED = 2
    BACKOFF = 3
    REPLACED = 4
    # No relay fingerprint was configured: the event's peer is the identity the relay
    # presented; nothing goes on until Context.trust_relay.
    UNTRUSTED = 5


class Origin(enum.IntEnum):
    """parley_origin: whose words an event's error and text are. Only LOCAL is parley's own;
    show RELAY and PEER text as quoted, untrusted text (PEER text is carried by the relay
    unauthenticated, so the relay could have written it too)."""

    LOCAL = 0
    RELAY = 1
    PEER = 2


class Path(enum.IntEnum):
    RELAY = 0
    DIRECT = 1


class NetcheckFormat(enum.IntEnum):
    JSON = 0
    TEXT = 1


E = TypeVar("E", bound=enum.IntEnum)


def enum_or_int(cls: Type[E], value: int) -> Union[E, int]:
    """``cls(value)``, or the plain int when a newer library sends a value we do not know."""
    try:
        return cls(value)
    except ValueError:
        return int(value)
