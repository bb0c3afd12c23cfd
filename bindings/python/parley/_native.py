"""Loading libparley and declaring its C ABI for ctypes.

Everything that depends on the exact shape of include/parley/parley.h lives here: the
struct layouts (which must match the header field for field, since ctypes cannot read a
header) and the function prototypes (so ctypes converts arguments and return values instead
of guessing ``int`` everywhere, which would truncate pointers on 64-bit systems).

The library is found through the ``PARLEY_LIBRARY`` environment variable (a full path to
libparley.so), else ``ctypes.util.find_library("parley")``. It is loaded once, at import,
and its version is checked then, so a mismatched library fails loudly up front instead of
misbehaving later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_int,
    c_int16,
    c_int64,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Optional

from ._enums import FINGERPRINT_BUF_LEN, ROOM_ID_BUF_LEN, VERSION_MAJOR, VERSION_NUM

# --------------------------------------------------------------------------------------------
# Structs (field for field as in parley.h; append-only)


class EventStruct(Structure):
    """parley_event."""

    _fields_ = [
        ("type", c_int),
        ("call", c_void_p),
        ("relay_state", c_int),
        ("call_state", c_int),
        ("error", c_int),
        ("path", c_int),
        ("path_from", c_int),
        ("peer", c_char * FINGERPRINT_BUF_LEN),
        ("text", c_void_p),  # const char *; read with string_at (never NULL per the header)
        ("data", c_void_p),  # const uint8_t *
        ("len", c_size_t),
        ("profile", c_int),
        ("profile_from", c_int),
        ("quality_reason", c_int),
        ("timestamp", c_uint32),  # QUALITY_CHANGED and ROOM_FRAME
        # Appended with rooms (the binding zeroes the struct before every poll and passes
        # its size, so a library never writes past the fields it declares).
        ("room", c_void_p),  # parley_room *
        ("stream_id", c_uint32),
        ("sequence", c_uint32),
        ("member_count", c_uint32),
        ("origin", c_int),  # parley_origin
        # Appended in 0.2.0: the event's call's user data (else its room's), read at
        # delivery. The binding stores its own token there (see Context._translate).
        ("user_data", c_void_p),
    ]


class RoomMemberStruct(Structure):
    """parley_room_member."""

    _fields_ = [
        ("fingerprint", c_char * FINGERPRINT_BUF_LEN),
        ("stream_id", c_uint32),
    ]


class ContextConfigStruct(Structure):
    """parley_context_config."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("relay_address", c_char_p),
        ("relay_fingerprint", c_char_p),
        ("bind_address", c_char_p),
        ("sample_rate", c_int),
        ("channels", c_int),
        ("jitter_min_ms", c_uint32),
        ("jitter_max_ms", c_uint32),
        ("disable_direct", c_int),
        ("include_loopback", c_int),
        ("event_callback", c_void_p),  # parley_event_fn; always NULL here (poll mode)
        ("event_user_data", c_void_p),
        ("quality_mode", c_int),
        ("quality_profile", c_int),
        ("port_min", c_int),
        ("port_max", c_int),
        ("quality_best_profile", c_int),
        ("dtx", c_int),
        ("no_path_timeout_ms", c_uint32),
        ("bind_address6", c_char_p),
        ("disable_network_watch", c_int),
        ("stun_servers", c_char_p),  # comma-separated "host:port" list
        ("port_mapping", c_int),
    ]


class CallStatsStruct(Structure):
    """parley_call_stats."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("path", c_int),
        ("rtt_ms", c_uint32),
        ("path_changes", c_uint64),
        ("time_to_direct_ms", c_int64),
        ("frames_sent", c_uint64),
        ("frames_received", c_uint64),
        ("loss_permille", c_uint32),
        ("peer_loss_permille", c_uint32),
        ("profile", c_int),
        ("fec_loss_hint", c_int),
        ("audio_bytes_sent", c_uint64),
        ("jitter_delay_ms", c_uint32),
        ("jitter_target_ms", c_uint32),
        ("frames_decoded", c_uint64),
        ("fec_recovered", c_uint64),
        ("red_recovered", c_uint64),
        ("concealed", c_uint64),
        ("late", c_uint64),
        ("muted", c_int),
        ("longest_gap_ms", c_uint32),
        ("quality_changes", c_uint64),
        ("quality_reason", c_int),
        ("quality_loss_permille", c_uint32),
        ("direct_attempts", c_uint32),
        ("direct_error", c_int),
        ("direct_lost", c_uint32),
    ]


class NetcheckOptionsStruct(Structure):
    """parley_netcheck_options."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("stun_servers", POINTER(c_char_p)),
        ("stun_server_count", c_size_t),
        ("bind_address", c_char_p),
        ("deadline_ms", c_uint32),
        ("include_loopback", c_int),
        ("format", c_int),
        ("relay_address", c_char_p),
    ]


# The first layout ends with parley_event.len: parley_context_poll_event_sized refuses less.
EVENT_MIN_SIZE = EventStruct.len.offset + ctypes.sizeof(c_size_t)

# --------------------------------------------------------------------------------------------
# Prototypes: name -> (restype, argtypes). `None` restype is void.

_P = c_void_p  # opaque handles (parley_identity *, _context *, _call *, _room *)
_PP = POINTER(c_void_p)

_REQUIRED = {
    "parley_version": (c_uint32, []),
    "parley_version_string": (c_char_p, []),
    "parley_strerror": (c_char_p, [c_int]),
    "parley_error_name": (c_char_p, [c_int]),
    "parley_last_error_message": (c_char_p, []),
    "parley_log_set_level": (c_int, [c_int]),
    "parley_identity_generate": (c_int, [_PP]),
    "parley_identity_from_seed": (c_int, [c_void_p, c_size_t, _PP]),
    "parley_identity_load_file": (c_int, [c_char_p, _PP]),
    "parley_identity_save_file": (c_int, [_P, c_char_p, c_uint]),
    "parley_identity_fingerprint": (c_int, [_P, c_void_p, c_size_t]),
    "parley_identity_public_key": (c_int, [_P, c_void_p]),
    "parley_identity_export_seed": (c_int, [_P, c_void_p]),
    "parley_identity_certificate_der": (c_int, [_P, c_void_p, POINTER(c_size_t)]),
    "parley_identity_destroy": (c_int, [_P]),
    "parley_certificate_fingerprint": (c_int, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "parley_fingerprint_normalize": (c_int, [c_char_p, c_void_p, c_size_t]),
    "parley_netcheck_options_init_sized": (c_int, [POINTER(NetcheckOptionsStruct), c_size_t]),
    "parley_netcheck_run": (c_int, [POINTER(NetcheckOptionsStruct), c_void_p, POINTER(c_size_t)]),
    # The header's natural names (parley_context_config_init, _poll_event, _wait_event) are
    # macros passing its sizeof: ctypes calls the _sized functions with the struct's size.
    "parley_context_config_init_sized": (c_int, [c_void_p, c_size_t]),
    "parley_context_create": (c_int, [_P, c_void_p, _PP]),
    "parley_context_destroy": (c_int, [_P]),
    "parley_context_poll_event_sized": (c_int, [_P, POINTER(EventStruct), c_size_t]),
    "parley_context_wait_event_sized": (c_int, [_P, POINTER(EventStruct), c_size_t, c_uint32]),
    "parley_context_wake": (c_int, [_P]),
    "parley_context_event_fd": (c_int, [_P, POINTER(c_int)]),
    "parley_event_type_name": (c_char_p, [c_int]),
    "parley_context_fingerprint": (c_int, [_P, c_void_p, c_size_t]),
    "parley_context_relay_fingerprint": (c_int, [_P, c_void_p, c_size_t]),
    "parley_context_trust_relay": (c_int, [_P, c_char_p]),
    "parley_context_network_changed": (c_int, [_P]),
    "parley_call_start": (c_int, [_P, c_char_p, _PP]),
    "parley_call_accept": (c_int, [_P]),
    "parley_call_reject": (c_int, [_P]),
    "parley_call_hangup": (c_int, [_P]),
    "parley_call_destroy": (c_int, [_P]),
    "parley_call_set_user_data": (c_int, [_P, c_void_p]),
    "parley_call_user_data": (c_void_p, [_P]),
    "parley_call_peer": (c_int, [_P, c_void_p, c_size_t]),
    "parley_call_push_audio": (c_int, [_P, c_void_p, c_size_t]),
    "parley_call_pull_audio": (c_int, [_P, c_void_p, c_size_t]),
    "parley_call_push_audio_float": (c_int, [_P, c_void_p, c_size_t]),
    "parley_call_pull_audio_float": (c_int, [_P, c_void_p, c_size_t]),
    "parley_call_set_muted": (c_int, [_P, c_int]),
    "parley_call_send_datagram": (c_int, [_P, c_void_p, c_size_t]),
    "parley_call_get_stats": (c_int, [_P, POINTER(CallStatsStruct)]),
    "parley_room_id_generate": (c_int, [c_void_p, c_size_t]),
    "parley_room_join": (c_int, [_P, c_char_p, _PP]),
    "parley_room_leave": (c_int, [_P]),
    "parley_room_destroy": (c_int, [_P]),
    "parley_room_set_user_data": (c_int, [_P, c_void_p]),
    "parley_room_user_data": (c_void_p, [_P]),
    "parley_room_members": (c_int, [_P, POINTER(RoomMemberStruct), POINTER(c_size_t)]),
    "parley_room_send": (c_int, [_P, c_uint32, c_uint32, c_int, c_void_p, c_size_t]),
}

# Functions a header newer than the one this binding mirrors (0.2.0) may add: declared here
# as they come, None on a library that lacks them (the binding then degrades). None yet:
# the version check at import guarantees everything of 0.2.0.
_OPTIONAL: dict = {}

# The room functions come as a set: the binding offers rooms only when all are there.
ROOM_FUNCTIONS = tuple(name for name in (*_REQUIRED, *_OPTIONAL)
                       if name.startswith("parley_room_"))


class _Lib:
    """The loaded library with typed functions as attributes (None for absent optional ones)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dll = ctypes.CDLL(path)  # CDLL releases the GIL around every call
        for name, (restype, argtypes) in _REQUIRED.items():
            try:
                fn = getattr(self.dll, name)
            except AttributeError:
                raise ImportError(f"parley: {path} lacks {name}: not a compatible libparley")
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[len("parley_"):], fn)
        for name, (restype, argtypes) in _OPTIONAL.items():
            fn = getattr(self.dll, name, None)
            if fn is not None:
                fn.restype = restype
                fn.argtypes = argtypes
            setattr(self, name[len("parley_"):], fn)


def _find_library() -> str:
    path = os.environ.get("PARLEY_LIBRARY")
    if path:
        return path
    found = ctypes.util.find_library("parley")
    if not found:
        raise ImportError(
            "parley: libparley not found; set PARLEY_LIBRARY to the full path of libparley.so"
        )
    return found


def _load() -> _Lib:
    path = _find_library()
    try:
        lib = _Lib(path)
    except OSError as e:
        raise ImportError(f"parley: cannot load {path}: {e}") from e
    version = lib.version()
    # Same major, and at least the minor this binding mirrors (the ABI only grows).
    if version >> 16 != VERSION_MAJOR or version < (VERSION_NUM & ~0xFF):
        raise ImportError(
            f"parley: {path} is version {lib.version_string().decode()}; this binding needs "
            f"{VERSION_MAJOR}.x >= {VERSION_MAJOR}.{(VERSION_NUM >> 8) & 0xFF}"
        )
    return lib


lib = _load()


def fingerprint_buffer() -> ctypes.Array:
    return ctypes.create_string_buffer(FINGERPRINT_BUF_LEN)


def room_id_buffer() -> ctypes.Array:
    return ctypes.create_string_buffer(ROOM_ID_BUF_LEN)


def has_origin() -> bool:
    """Whether the loaded library fills parley_event.origin (every 0.2 library does)."""
    return lib.context_trust_relay is not None


def has_rooms() -> bool:
    """Whether the loaded library has the room functions (a newer header added them)."""
    return all(getattr(lib, name[len("parley_"):]) is not None for name in ROOM_FUNCTIONS)


def c_str(value: Optional[str]) -> Optional[bytes]:
    """A Python string for a `const char *` parameter (None stays NULL)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    if "\0" in value:
        raise ValueError("embedded NUL character")
    return value.encode()


__all__ = [
    "CallStatsStruct",
    "ContextConfigStruct",
    "EVENT_MIN_SIZE",
    "EventStruct",
    "NetcheckOptionsStruct",
    "ROOM_FUNCTIONS",
    "RoomMemberStruct",
    "c_int16",
    "c_uint8",
    "lib",
]
