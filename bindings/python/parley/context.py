"""parley.Context and parley.Call: a relay connection, its calls and rooms, and their audio.

Why poll mode: the C API can deliver events either to a callback on the context's own
thread or into a queue the host polls. A Python callback would run on a foreign thread
while holding the GIL, could stall the library's event loop, and must never destroy its
context; polling keeps every event on the thread that asks for it. ``events()`` and
``wait_for()`` block in parley_context_wait_event_sized (ctypes releases the GIL meanwhile);
close() from another thread ends such a wait at once with parley_context_wake. On the main
thread the wait is cut into slices of at most 100 ms, so that Ctrl-C (which Python handles
between C calls) is never held up for longer. ``events_async()`` is the asyncio form: it
waits for parley_context_event_fd to become readable (loop.add_reader) and polls, so no
thread blocks at all.

Handles: the C API hands out one ``parley_call *`` per call (from parley_call_start or an
INCOMING_CALL event) and one ``parley_room *`` per room membership (parley_room_join) that
the host owns until it destroys them. The Context gives each Call and Room an int token and
attaches it to the handle as its user data (parley_call_set_user_data,
parley_room_set_user_data); every event carries it back in parley_event.user_data, so every
event about a call or room yields the same Call or Room object (dicts keyed by token, never
by a pointer whose memory a later handle may reuse), and close() releases whatever the host
did not.

Locking: two re-entrant locks per Context, always taken in this order.
- The poll lock serialises fetching events (an event's pointers are only valid until the
  next poll on the context) and is held while blocking in parley_context_wait_event_sized,
  which must not race with parley_context_destroy: close() raises a flag first and wakes the
  waiter (parley_context_wake), which gives the lock up raising Error CLOSED.
- The context lock guards the pointer dicts, call and room control (accept, hangup, stats,
  send, leave, ...) and destruction, so a Call or Room method never races with close(). It is
  never held while waiting for events, so control calls from other threads do not wait for a
  waiter. Events are translated under it: a call or room created under it has its token set
  (and is in its dict) before any event naming it is translated. (An event polled between
  parley_call_start and the token being set carries no user data: translation then reads the
  handle's user data, set by then, under the lock.)
push()/pull() take no lock: they are the real-time path, to be called from one capture
thread and one playout thread, which must stop before the call is released.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import math
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from typing import (Any, AsyncIterator, Callable, Dict, Iterable, Iterator, List, Optional,
                    Tuple, Union)

from ._enums import (
    DATAGRAM_MAX,
    FINGERPRINT_BUF_LEN,
    CallState,
    ErrorCode,
    EventType,
    Origin,
    Path,
    QualityMode,
    QualityReason,
    RelayState,
    enum_or_int,
)
from ._native import (
    CallStatsStruct,
    ContextConfigStruct,
    EventStruct,
    c_str,
    fingerprint_buffer,
    has_origin,
    lib,
)
from ._closeable import Closeable
from .errors import Error, check
from .identity import Identity
from .room import Room, require_rooms

# Contexts still open at interpreter exit are closed before the interpreter tears down, so
# no library thread outlives the Python objects it was created for.
_open_contexts: "weakref.WeakSet[Context]" = weakref.WeakSet()


@atexit.register
def _close_open_contexts() -> None:
    for ctx in list(_open_contexts):
        try:
            ctx.close()
        except Exception:
            pass


# The longest single parley_context_wait_event_sized on the main thread: bounds how long
# KeyboardInterrupt waits for it (close() wakes a waiter at once, on any thread).
_WAIT_SLICE_MS = 100
# Elsewhere one wait may last this long (no signal lands on other threads); a wait without a
# deadline simply waits again.
_WAIT_LONG_MS = 3_600_000

# Tokens (the user data of call and room handles): unique for the process's life, never 0.
_tokens = itertools.count(1)


# parley_context_config.stun_servers takes at most this many servers (more: INVALID_ARGUMENT).
STUN_SERVERS_MAX = 8


def _stun_servers_text(stun_servers: Optional[Union[str, Iterable[str]]]) -> Optional[str]:
    """The C field's comma-separated list: a str goes as it is, a list of "host:port" entries
    is joined with ","; None, "" or an empty list: None (the relay alone). The entries are
    checked by parley_context_create (INVALID_ARGUMENT); one holding a comma would read as
    two there, so it is refused here with the same error."""
    if stun_servers is None:
        return None
    if isinstance(stun_servers, str):
        return stun_servers or None
    if isinstance(stun_servers, (bytes, bytearray)):
        raise TypeError("stun_servers: expected str or a list of str, got bytes")
    entries = list(stun_servers)
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise TypeError(f"stun_servers[{i}]: expected str, got {type(entry).__name__}")
        if "," in entry:
            raise Error(ErrorCode.INVALID_ARGUMENT,
                        f"stun_servers[{i}] {entry!r} holds a comma (one host:port per entry)",
                        "Context")
    return ",".join(entries) or None


@dataclass(frozen=True)
class Event:
    """One parley_event, copied out of the library (its pointers die at the next poll).

    ``call`` is the Call concerned (the same object for the same call, every time: parley
    hands its token back in parley_event.user_data), ``room`` the Room concerned (ROOM_UPDATE,
    ROOM_FRAME, and QUALITY_CHANGED of a room, which has no ``call``); None otherwise, or once
    the host released it. Attach your own data to a Call or Room with its ``tag``.

    Fields that only some event types carry are None for the others: relay_state
    (RELAY_STATE), call_state (CALL_STATE), path/path_from (PATH_CHANGED), profile,
    profile_from and quality_reason (QUALITY_CHANGED), timestamp (QUALITY_CHANGED: the media
    timestamp it applies from; ROOM_FRAME: the sender's), stream_id (ROOM_UPDATE: our own
    stream; ROOM_FRAME: the sender's), sequence (ROOM_FRAME) and member_count (ROOM_UPDATE,
    ourselves included). A ROOM_FRAME's ``peer`` is the sender's fingerprint as the relay
    announced it and ``data`` the payload exactly as the sender passed it to Room.send: parley
    does not encrypt room frames, so it is whatever the sender sealed. Enum-typed fields hold
    a plain int when a newer library sends a value this binding does not know.

    Relay trust: a RELAY_STATE event with relay_state RelayState.UNTRUSTED carries in
    ``peer`` the fingerprint the relay presented (a context created without
    relay_fingerprint); nothing goes on until the host calls Context.trust_relay.

    ``origin`` says whose words ``error`` and ``text`` are (an Origin, on every event; None
    against a libparley older than the field): only Origin.LOCAL is parley's own, RELAY and
    PEER text is untrusted (show it quoted).

    An ERROR event with ``peer`` set (and error ErrorCode.MEDIA_KEY, no ``call``) is an
    invite from ``peer`` that parley refused without ringing: its media key was forged,
    stale or replayed. Whoever sent it learned that this identity is online.
    """

    type: Union[EventType, int]
    call: Optional["Call"] = None
    error: Union[ErrorCode, int] = ErrorCode.OK
    peer: str = ""
    text: str = ""
    data: bytes = b""
    relay_state: Optional[Union[RelayState, int]] = None
    call_state: Optional[Union[CallState, int]] = None
    path: Optional[Union[Path, int]] = None
    path_from: Optional[Union[Path, int]] = None
    profile: Optional[int] = None
    profile_from: Optional[int] = None
    quality_reason: Optional[Union[QualityReason, int]] = None
    timestamp: Optional[int] = None
    room: Optional[Room] = None
    stream_id: Optional[int] = None
    sequence: Optional[int] = None
    member_count: Optional[int] = None
    origin: Optional[Union[Origin, int]] = None

    def __repr__(self) -> str:
        if isinstance(self.type, EventType):
            parts = [self.type.name]
        else:  # newer than this binding: the library may still know its name
            name = lib.event_type_name(int(self.type)).decode(errors="replace")
            parts = [name if name.startswith("PARLEY_") else f"type={self.type}"]
        if self.room is not None:
            parts.append(f"room={self.room.id[:12]}")
        for name in ("relay_state", "call_state", "path_from", "path", "profile_from",
                     "profile", "quality_reason", "timestamp", "member_count", "stream_id",
                     "sequence"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={getattr(value, 'name', value)}")
        if self.error:
            parts.append(f"error={getattr(self.error, 'name', self.error)}")
        if self.peer:
            parts.append(f"peer={self.peer[:12]}")
        if self.origin is not None and self.origin != Origin.LOCAL:
            parts.append(f"origin={getattr(self.origin, 'name', self.origin)}")
        if self.text:
            parts.append(f"text={self.text!r}")
        if self.data:
            parts.append(f"data={len(self.data)}B")
        return f"Event({' '.join(parts)})"


@dataclass(frozen=True)
class CallStats:
    """parley_call_stats (see the header for each field's meaning)."""

    path: Union[Path, int]
    rtt_ms: int
    path_changes: int
    time_to_direct_ms: int  # -1: never went direct
    frames_sent: int
    frames_received: int
    loss_permille: int
    peer_loss_permille: int
    profile: int
    fec_loss_hint: int
    audio_bytes_sent: int
    jitter_delay_ms: int
    jitter_target_ms: int
    frames_decoded: int
    fec_recovered: int
    red_recovered: int
    concealed: int
    late: int
    muted: bool
    longest_gap_ms: int
    quality_changes: int
    quality_reason: Union[QualityReason, int]
    quality_loss_permille: int
    direct_attempts: int  # the first ICE run and every restart; 0 with disable_direct
    # Why the last direct attempt failed or the direct path was lost (e.g. ICE_FAILED,
    # TIMEOUT, PEER_IDENTITY); ErrorCode.OK while direct or before any attempt has ended.
    direct_error: Union[ErrorCode, int]
    direct_lost: int  # verified direct paths that died


class Context(Closeable):
    """A client context: an identity, one relay connection, one UDP socket, calls and rooms.

    Args:
        identity: who we are (copied; may be closed afterwards).
        relay_address: "ip:port" or "[ipv6]:port".
        relay_fingerprint: the relay's 64-hex fingerprint to pin. None: the context learns
            the identity the relay presents without sending it anything of ours, raises a
            RELAY_STATE event with RelayState.UNTRUSTED and that fingerprint in ``peer``, and
            waits for the host's decision (trust_relay). Store the trusted fingerprint and
            pass it here from then on.
        sample_rate, channels: the PCM format of push()/pull() (8000..48000 Hz; 1 or 2).
        bind_address: local "ip:port" or "[ipv6]:port": one socket, of that family. None: a
            socket of each family, 0.0.0.0 and [::] on one port where it is free (IPv4 only
            on a host without IPv6).
        bind_address6: "[ipv6]:port": the IPv6 socket's address next to an IPv4 (or None)
            bind_address, e.g. a fixed port. None: "[::]:0" when bind_address is None too,
            else no IPv6 socket. Not IPv6, or next to an IPv6 bind_address: raises
            Error(ErrorCode.ADDRESS_FAMILY).
        jitter_min_ms, jitter_max_ms: jitter buffer bounds (0: the defaults, 20 and 500).
        include_loopback: offer loopback host candidates (both parties on one machine).
        disable_direct: keep calls on the relay.
        quality_mode, quality_profile: QualityMode.FIXED pins the voice profile (0 best..4).
        port_range: (first, last): bind the first free UDP port in it (bind_address's port
            must then be 0); None: any port.
        best_profile: adaptive quality only: the best profile this side ever sends or agrees
            to (0: no cap), e.g. a data-saver setting.
        dtx: discontinuous transmission: silence and mute cost almost nothing on the wire,
            but whoever sees the (encrypted) frames learns when each side speaks and when it
            is muted. False (the default): every voice frame of a profile has one size.
        no_path_timeout_ms: how long an active call may have no path to the peer (relay
            unreachable and no direct path) before it ends with ErrorCode.NO_PATH (0: 30000).
            A call on a working direct path outlives any relay outage.
        disable_network_watch: do not watch the network. False (the default): where the OS
            lets a process watch its interfaces (Linux: rtnetlink; not Android apps), the
            context notices network changes by itself and acts as on network_changed();
            hosts that hear from the platform sooner call network_changed() (both together
            are fine).
        stun_servers: STUN servers asked for this device's public mappings next to the
            relay: a list of "host:port", "[ipv6]:port" or "ipv4:port" entries (at most
            STUN_SERVERS_MAX = 8), or one str of them separated by commas. Each answer is a
            server-reflexive candidate of every call, and together they classify the NAT
            (behind a sequential symmetric NAT calls also offer the ports it hands out next).
            Calls never wait for them. None or empty (the default): the relay alone. A
            malformed entry, or more than 8: Error(ErrorCode.INVALID_ARGUMENT).
        port_mapping: ask the network's gateway to forward a public port to this context's
            IPv4 socket (PCP, NAT-PMP or UPnP IGD, whichever answers first): a candidate any
            peer can reach. Renewed while the context lives, deleted when it closes. False
            (the default): off, as it opens a port on the user's router; apps turn it on.
    """

    def __init__(
        self,
        identity: Identity,
        relay_address: str,
        relay_fingerprint: Optional[str] = None,
        *,
        sample_rate: int = 48000,
        channels: int = 1,
        bind_address: Optional[str] = None,
        jitter_min_ms: int = 0,
        jitter_max_ms: int = 0,
        include_loopback: bool = False,
        disable_direct: bool = False,
        quality_mode: int = QualityMode.ADAPTIVE,
        quality_profile: int = 0,
        port_range: Optional[Tuple[int, int]] = None,
        best_profile: int = 0,
        bind_address6: Optional[str] = None,
        dtx: bool = False,
        no_path_timeout_ms: int = 0,
        disable_network_watch: bool = False,
        stun_servers: Optional[Union[str, Iterable[str]]] = None,
        port_mapping: bool = False,
    ) -> None:
        self._ptr: Optional[int] = None
        self._lock = threading.RLock()  # the context lock (see the module docstring)
        self._poll_lock = threading.RLock()  # taken before the context lock, never after
        self._closing = False
        self._calls: Dict[int, Call] = {}  # token (the handle's user data) -> Call
        self._rooms: Dict[int, Room] = {}  # token -> Room
        # (loop, future) of each events_async() generator waiting: close() wakes them.
        self._async_waiters: List[Tuple[Any, Any]] = []
        self._event = EventStruct()
        self.sample_rate = sample_rate or 48000  # 0 means the default in the C API too
        self.channels = channels or 1
        self.relay_state: Union[RelayState, int] = RelayState.IDLE

        # parley_context_config_init (a macro) with our struct's size: zeroes min(our size,
        # the library's) bytes and sets struct_size to that; a smaller value says the library
        # is older and ignores the fields past it.
        config = storage = ContextConfigStruct()
        check(lib.context_config_init_sized(ctypes.addressof(storage), ctypes.sizeof(storage)),
              "parley_context_config_init_sized")
        library_size = config.struct_size
        config.relay_address = c_str(relay_address)
        config.relay_fingerprint = c_str(relay_fingerprint)
        config.bind_address = c_str(bind_address)
        config.sample_rate = sample_rate
        config.channels = channels
        config.jitter_min_ms = jitter_min_ms
        config.jitter_max_ms = jitter_max_ms
        config.disable_direct = 1 if disable_direct else 0
        config.include_loopback = 1 if include_loopback else 0
        config.event_callback = None  # poll mode
        if quality_mode != QualityMode.ADAPTIVE or quality_profile != 0:
            if library_size < ContextConfigStruct.quality_profile.offset + ctypes.sizeof(ctypes.c_int):
                raise Error(ErrorCode.INVALID_ARGUMENT,
                            "this libparley has no quality_mode/quality_profile", "Context")
        config.quality_mode = int(quality_mode)
        config.quality_profile = quality_profile
        if port_range is not None:
            if library_size < ContextConfigStruct.port_max.offset + ctypes.sizeof(ctypes.c_int):
                raise Error(ErrorCode.INVALID_ARGUMENT, "this libparley has no port range",
                            "Context")
            config.port_min, config.port_max = port_range
        if best_profile:
            if library_size < (ContextConfigStruct.quality_best_profile.offset
                               + ctypes.sizeof(ctypes.c_int)):
                raise Error(ErrorCode.INVALID_ARGUMENT, "this libparley has no quality cap",
                            "Context")
            config.quality_best_profile = best_profile
        # Fields appended to parley_context_config since its first layout: set only when not
        # the default (zero / NULL), so a library that lacks them still works.
        # The ctypes struct keeps a reference to every bytes object assigned to a c_char_p
        # field (stun_servers too), so the strings live until parley_context_create returns.
        appended = (("dtx", 1 if dtx else 0), ("no_path_timeout_ms", no_path_timeout_ms),
                    ("bind_address6", c_str(bind_address6)),
                    ("disable_network_watch", 1 if disable_network_watch else 0),
                    ("stun_servers", c_str(_stun_servers_text(stun_servers))),
                    ("port_mapping", 1 if port_mapping else 0))
        for name, value in appended:
            if value is None or value == 0:
                continue
            field = getattr(ContextConfigStruct, name)
            if library_size < field.offset + field.size:
                raise Error(ErrorCode.INVALID_ARGUMENT, f"this libparley has no {name}",
                            "Context")
            setattr(config, name, value)

        out = ctypes.c_void_p()
        check(lib.context_create(identity._handle, ctypes.addressof(storage), ctypes.byref(out)),
              "parley_context_create")
        self._ptr = out.value
        buf = fingerprint_buffer()
        check(lib.context_fingerprint(self._ptr, buf, FINGERPRINT_BUF_LEN),
              "parley_context_fingerprint")
        self._fingerprint = buf.value.decode()
        _open_contexts.add(self)

    # -- properties --------------------------------------------------------------------------

    @property
    def _handle(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise Error(ErrorCode.CLOSED, "the context was closed", "Context")
        return ptr

    @property
    def fingerprint(self) -> str:
        """Our own fingerprint (64 hex)."""
        return self._fingerprint

    @property
    def relay_fingerprint(self) -> str:
        """The relay's fingerprint: the configured one, or the one the host trusted with
        trust_relay(). Raises Error(NOT_REGISTERED) before either (also while the context
        waits in RelayState.UNTRUSTED)."""
        if lib.context_relay_fingerprint is None:
            raise Error(ErrorCode.INVALID_ARGUMENT,
                        "this libparley has no parley_context_relay_fingerprint", "Context")
        buf = fingerprint_buffer()
        with self._lock:
            check(lib.context_relay_fingerprint(self._handle, buf, FINGERPRINT_BUF_LEN),
                  "parley_context_relay_fingerprint")
        return buf.value.decode()

    def trust_relay(self, relay_fingerprint: str) -> None:
        """The host's trust decision on the relay (parley_context_trust_relay): pins
        `relay_fingerprint` (64 hex; normally the ``peer`` of the RelayState.UNTRUSTED event,
        once the host checked it, e.g. against one obtained out of band) as the relay's
        identity, connects and registers; progress arrives as RELAY_STATE events. A relay
        presenting another identity is refused (RelayState.BACKOFF with
        ErrorCode.PEER_IDENTITY). Also replaces a configured pin.

        Raises Error: FINGERPRINT_INVALID (not 64 hex digits), CLOSED; INVALID_ARGUMENT
        against a libparley without the function (which trusts the first relay it sees).
        """
        if lib.context_trust_relay is None:
            raise Error(ErrorCode.INVALID_ARGUMENT,
                        "this libparley has no parley_context_trust_relay", "Context")
        encoded = c_str(relay_fingerprint)
        with self._lock:
            check(lib.context_trust_relay(self._handle, encoded), "parley_context_trust_relay")

    def network_changed(self) -> None:
        """Tells the context that the device's network changed (parley_context_network_changed):
        an interface came or went, Wi-Fi handed over to cellular, a VPN started. Call it from
        the platform's network monitor (Android's ConnectivityManager.NetworkCallback, iOS's
        NWPathMonitor) whenever the usable networks or their addresses change; extra calls
        cost a few packets. Returns at once; the context then refreshes its relay
        registration (reconnecting if the relay does not answer within a second), learns its
        public addresses again and restarts ICE on every active call, whose audio keeps
        flowing on whatever path still works (the relay included) until a new direct path is
        verified.

        Raises Error: CLOSED; INVALID_ARGUMENT against a libparley without the function.
        """
        if lib.context_network_changed is None:
            raise Error(ErrorCode.INVALID_ARGUMENT,
                        "this libparley has no parley_context_network_changed", "Context")
        with self._lock:
            check(lib.context_network_changed(self._handle), "parley_context_network_changed")

    @property
    def event_fd(self) -> int:
        """parley_context_event_fd: a descriptor that is readable exactly while events are
        queued, for the host's own loop (select/poll/epoll): when it is readable, poll()
        until it returns None. It belongs to the context: do not read, write or close it,
        and remove it from your loop before close() (which closes it). events_async() uses
        it for asyncio."""
        fd = ctypes.c_int(-1)
        with self._lock:
            check(lib.context_event_fd(self._handle, ctypes.byref(fd)), "parley_context_event_fd")
        return fd.value

    @property
    def calls(self) -> List["Call"]:
        """The calls not released yet."""
        with self._lock:
            return list(self._calls.values())

    @property
    def rooms(self) -> List[Room]:
        """The rooms not released yet (left ones included)."""
        with self._lock:
            return list(self._rooms.values())

    @property
    def closed(self) -> bool:
        return self._ptr is None

    # -- calls -------------------------------------------------------------------------------

    def call(self, peer_fingerprint: str) -> "Call":
        """Calls a peer through the relay; progress arrives as CALL_STATE events."""
        out = ctypes.c_void_p()
        with self._lock:  # no event is translated before the token is set and in the dict
            check(lib.call_start(self._handle, c_str(peer_fingerprint), ctypes.byref(out)),
                  "parley_call_start")
            try:
                call = self._adopt_call(out.value, incoming=False)
            except BaseException:
                lib.call_destroy(out.value)
                raise
        return call

    def _adopt_call(self, ptr: int, incoming: bool) -> "Call":
        """A Call for a new handle: its token goes into the handle's user data and the dict
        (the context lock is held)."""
        token = next(_tokens)
        call = Call(self, ptr, incoming=incoming, token=token)
        check(lib.call_set_user_data(ptr, token), "parley_call_set_user_data")
        self._calls[token] = call
        return call

    # -- rooms -------------------------------------------------------------------------------

    def join_room(self, room_id: str) -> Room:
        """Joins room `room_id` (32 hex characters, e.g. from parley.room_id_generate(),
        shared with the members out of band). Membership arrives as ROOM_UPDATE events; a
        refusal by the relay (room full, too many rooms) as an ERROR event.

        Room frames are NOT encrypted by parley: the relay and every member see them as
        sent. Seal them with a key the members share (see Room.send).

        Raises Error: INVALID_ARGUMENT (not 32 hex characters, or a room this context is in
        and has not left), NOT_REGISTERED (the relay connection is not up), QUEUE_FULL,
        CLOSED.
        """
        require_rooms("Context.join_room")
        encoded = c_str(room_id)
        out = ctypes.c_void_p()
        with self._lock:  # no event is translated before the token is set and in the dict
            check(lib.room_join(self._handle, encoded, ctypes.byref(out)), "parley_room_join")
            try:
                token = next(_tokens)
                room = Room(self, out.value, room_id.lower(), token)
                check(lib.room_set_user_data(out.value, token), "parley_room_set_user_data")
            except BaseException:
                lib.room_destroy(out.value)
                raise
            self._rooms[token] = room
        return room

    # -- events ------------------------------------------------------------------------------

    def poll(self) -> Optional[Event]:
        """The oldest queued event, or None at once if there is none."""
        with self._poll_lock:
            return self._fetch(0)

    def _fetch(self, timeout_ms: int) -> Optional[Event]:
        """One poll (timeout_ms 0) or one blocking wait. The caller holds the poll lock."""
        handle = self._handle
        ev = self._event
        size = ctypes.sizeof(ev)
        ctypes.memset(ctypes.byref(ev), 0, size)  # an older library writes less
        if timeout_ms > 0:
            rc = check(lib.context_wait_event_sized(handle, ctypes.byref(ev), size, timeout_ms),
                       "parley_context_wait_event_sized")
        else:
            rc = check(lib.context_poll_event_sized(handle, ctypes.byref(ev), size),
                       "parley_context_poll_event_sized")
        if rc == 0:
            return None
        with self._lock:
            return self._translate(ev)

    def _next_event(self, deadline: Optional[float]) -> Optional[Event]:
        """The next event, waiting for it until `deadline` (time.monotonic(); None: forever);
        None once the deadline passed. Raises Error(CLOSED) if the context is closed or
        being closed meanwhile (close() wakes the wait)."""
        # Only the main thread gets KeyboardInterrupt, between C calls: waits there are cut
        # into short slices. Other threads wait until an event, the deadline or a wake.
        longest = (_WAIT_SLICE_MS if threading.current_thread() is threading.main_thread()
                   else _WAIT_LONG_MS)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            wait_ms = 0
            if remaining is None or remaining > 0:
                wait_ms = longest
                if remaining is not None:
                    wait_ms = min(wait_ms, max(1, math.ceil(remaining * 1000)))
            with self._poll_lock:
                if self._closing:
                    raise Error(ErrorCode.CLOSED, "the context was closed", "Context")
                event = self._fetch(wait_ms)
            if event is not None:
                return event
            if remaining is not None and remaining <= 0:
                return None

    def _translate(self, ev: EventStruct) -> Event:
        """A parley_event as an Event (the context lock is held)."""
        etype = enum_or_int(EventType, ev.type)
        call: Optional[Call] = None
        room: Optional[Room] = None
        if ev.call:
            if etype == EventType.INCOMING_CALL:
                # A new handle, without user data yet: this is where it gets its token.
                call = self._adopt_call(ev.call, incoming=True)
            else:
                # The token parley handed back; none if the event was polled before call()
                # set it: the handle has it by now (call() sets it under this lock), unless
                # the handle is gone. A token not in the dict: the Call was released.
                token = ev.user_data or lib.call_user_data(ev.call)
                call = self._calls.get(token) if token else None
        elif ev.room:
            token = ev.user_data or lib.room_user_data(ev.room)  # as for calls
            room = self._rooms.get(token) if token else None
        fields: Dict[str, Any] = dict(
            type=etype,
            call=call,
            room=room,
            error=enum_or_int(ErrorCode, ev.error),
            peer=ev.peer.decode(errors="replace"),
            text=ctypes.string_at(ev.text).decode(errors="replace") if ev.text else "",
            data=ctypes.string_at(ev.data, ev.len) if ev.data and ev.len else b"",
            origin=enum_or_int(Origin, ev.origin) if has_origin() else None,
        )
        known = isinstance(etype, EventType)
        if etype == EventType.RELAY_STATE or not known:
            fields["relay_state"] = enum_or_int(RelayState, ev.relay_state)
        if etype == EventType.CALL_STATE or not known:
            fields["call_state"] = enum_or_int(CallState, ev.call_state)
        if etype == EventType.PATH_CHANGED or not known:
            fields["path"] = enum_or_int(Path, ev.path)
            fields["path_from"] = enum_or_int(Path, ev.path_from)
        if etype == EventType.QUALITY_CHANGED or not known:
            fields["profile"] = ev.profile
            fields["profile_from"] = ev.profile_from
            fields["quality_reason"] = enum_or_int(QualityReason, ev.quality_reason)
        if etype in (EventType.QUALITY_CHANGED, EventType.ROOM_FRAME) or not known:
            fields["timestamp"] = ev.timestamp
        if etype in (EventType.ROOM_UPDATE, EventType.ROOM_FRAME) or not known:
            fields["stream_id"] = ev.stream_id
        if etype == EventType.ROOM_FRAME or not known:
            fields["sequence"] = ev.sequence
        if etype == EventType.ROOM_UPDATE or not known:
            fields["member_count"] = ev.member_count
        event = Event(**fields)
        # Keep the Python-side view of states current.
        if etype == EventType.RELAY_STATE:
            self.relay_state = event.relay_state  # type: ignore[assignment]
        elif call is not None and etype == EventType.INCOMING_CALL:
            call._state = CallState.INCOMING
        elif call is not None and etype == EventType.CALL_STATE:
            call._state = event.call_state  # type: ignore[assignment]
            if event.call_state == CallState.ENDED:
                call._end_error = event.error
                call._end_text = event.text
                call._end_origin = event.origin
        elif room is not None and etype == EventType.ROOM_UPDATE:
            room._member_count = ev.member_count
            room._stream_id = ev.stream_id
        return event

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Yields events as they arrive, for `timeout` seconds in all (None: forever;
        0: only those queued now). Blocks in parley_context_wait_event_sized between events
        (no lock is held while the caller handles one). Raises Error(CLOSED) when the context
        is closed, also by another thread while this one waits."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self._next_event(deadline)
            if event is None:
                return
            yield event

    def wait_for(
        self,
        predicate: Callable[[Event], bool],
        timeout: float,
        on_other: Optional[Callable[[Event], None]] = None,
    ) -> Event:
        """Consumes events until one satisfies `predicate` and returns it. Events that do
        not are passed to `on_other` (or dropped). Raises TimeoutError after `timeout`
        seconds, naming the last events seen."""
        seen: List[Event] = []
        for event in self.events(timeout):
            if predicate(event):
                return event
            seen.append(event)
            del seen[:-8]
            if on_other is not None:
                on_other(event)
        raise TimeoutError(
            f"parley: no matching event within {timeout:g} s on {self._fingerprint[:12]}; "
            f"last seen: {seen}"
        )

    async def events_async(self) -> AsyncIterator[Event]:
        """``async for event in ctx.events_async():`` the events as they arrive, on asyncio.

        Waits for parley_context_event_fd to become readable (loop.add_reader, on a
        duplicate of the descriptor that this generator owns), then polls until the queue is
        empty: no thread blocks and nothing polls on a timer. The reader is registered only
        while the generator waits, and removed when it closes (``break`` out of the loop
        closes it once it is collected: use ``aclose()`` or ``contextlib.aclosing`` to close
        it at once). Raises Error(CLOSED) when the context is closed, also while waiting.
        Use one way of taking events per context at a time (this, or events()/poll())."""
        import asyncio

        loop = asyncio.get_running_loop()
        # A duplicate of parley's descriptor: still valid (and ours to close) after close()
        # destroyed the context and closed the original.
        fd = os.dup(self.event_fd)
        try:
            while True:
                event = self.poll()  # raises Error(CLOSED) once closed
                if event is not None:
                    yield event
                    continue
                ready = loop.create_future()
                waiter = (loop, ready)
                with self._lock:
                    if self._ptr is None or self._closing:
                        raise Error(ErrorCode.CLOSED, "the context was closed", "Context")
                    self._async_waiters.append(waiter)
                # Level-triggered: readable while events are queued. Registered only while
                # waiting, so a consumer busy elsewhere leaves the loop idle.
                loop.add_reader(fd, _wake_future, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(fd)
                    with self._lock:
                        if waiter in self._async_waiters:
                            self._async_waiters.remove(waiter)
        finally:
            os.close(fd)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Hangs up every call, leaves every room, closes the relay connection, stops the
        context's thread and releases every Call and Room (stop their audio threads first).
        A thread waiting in events()/wait_for() gets Error(CLOSED) at once
        (parley_context_wake), as does an events_async() generator. Idempotent."""
        with self._lock:
            if self._ptr is None:
                return
            self._closing = True  # a waiter gives up the poll lock: wake it now
            lib.context_wake(self._ptr)
            for loop, future in self._async_waiters:
                try:
                    loop.call_soon_threadsafe(_wake_future, future)
                except RuntimeError:  # its loop is closed already
                    pass
        with self._poll_lock, self._lock:
            if self._ptr is None:  # closed by another thread meanwhile
                return
            # Never polled incoming calls are destroyed by parley_context_destroy itself.
            ptr, self._ptr = self._ptr, None
            check(lib.context_destroy(ptr), "parley_context_destroy")
            calls = list(self._calls.values())
            rooms = list(self._rooms.values())
        for call in calls:
            call.release()
        for room in rooms:
            room.release()

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else getattr(self.relay_state, "name", self.relay_state)
        return f"<parley.Context {getattr(self, '_fingerprint', '?')[:12]} {state}>"


def _wake_future(future: Any) -> None:
    if not future.done():
        future.set_result(None)


AudioBuffer = Any  # bytes-like (int16 little-endian) or a numpy int16 array
FloatAudioBuffer = Any  # array('f'), a float32 buffer or bytes (little-endian), numpy float32


class Call(Closeable):
    """One call. Obtain it from Context.call() or from an INCOMING_CALL event's `call`."""

    def __init__(self, context: Context, ptr: int, incoming: bool, token: int = 0) -> None:
        self._context = context
        self._ptr: Optional[int] = ptr
        self._token = token  # this Call's key in the context (the handle's user data)
        self.incoming = incoming
        #: The application's own data for this call (parley never looks at it).
        self.tag: Any = None
        self._state: Union[CallState, int] = CallState.INCOMING if incoming else CallState.INVITING
        self._end_error: Union[ErrorCode, int] = ErrorCode.OK
        self._end_text = ""
        self._end_origin: Optional[Union[Origin, int]] = None
        self._muted = False
        self._channels = context.channels
        buf = fingerprint_buffer()
        check(lib.call_peer(ptr, buf, FINGERPRINT_BUF_LEN), "parley_call_peer")
        self.peer: str = buf.value.decode()

    # -- state -------------------------------------------------------------------------------

    @property
    def context(self) -> Context:
        return self._context

    @property
    def state(self) -> Union[CallState, int]:
        """The last call state the context's events reported (updated as they are polled)."""
        return self._state

    @property
    def end_error(self) -> Union[ErrorCode, int]:
        """Why the call ended (ErrorCode.OK: a normal hangup); meaningful once ENDED."""
        return self._end_error

    @property
    def end_text(self) -> str:
        return self._end_text

    @property
    def end_origin(self) -> Optional[Union[Origin, int]]:
        """Whose words end_error and end_text are (see Event.origin); None before ENDED."""
        return self._end_origin

    @property
    def released(self) -> bool:
        return self._ptr is None

    @property
    def _handle(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise Error(ErrorCode.CLOSED, "the call was released", "Call")
        return ptr

    # -- control -----------------------------------------------------------------------------

    def _control(self, fn: Callable[[int], int], name: str) -> None:
        with self._context._lock:
            check(fn(self._handle), name)

    def accept(self) -> None:
        self._control(lib.call_accept, "parley_call_accept")

    def reject(self) -> None:
        self._control(lib.call_reject, "parley_call_reject")

    def hangup(self) -> None:
        self._control(lib.call_hangup, "parley_call_hangup")

    def send_datagram(self, data: bytes) -> None:
        """Sends the host's own bytes (up to DATAGRAM_MAX) end-to-end encrypted, unreliable
        and unordered; the peer gets a DATAGRAM event. Raises Error CALL_NOT_ACTIVE before
        the call is active, CALL_ENDED after, MESSAGE_TOO_LARGE, QUEUE_FULL."""
        data = bytes(data)
        with self._context._lock:
            check(lib.call_send_datagram(self._handle, data, len(data)),
                  "parley_call_send_datagram")

    def stats(self) -> CallStats:
        """Statistics of an active call (Error CALL_NOT_ACTIVE before, CALL_ENDED after)."""
        s = CallStatsStruct()
        s.struct_size = ctypes.sizeof(CallStatsStruct)
        with self._context._lock:
            check(lib.call_get_stats(self._handle, ctypes.byref(s)), "parley_call_get_stats")
        values = {name: getattr(s, name) for name, _ in CallStatsStruct._fields_}
        del values["struct_size"]
        values["path"] = enum_or_int(Path, s.path)
        values["quality_reason"] = enum_or_int(QualityReason, s.quality_reason)
        values["direct_error"] = enum_or_int(ErrorCode, s.direct_error)
        values["muted"] = bool(s.muted)
        return CallStats(**values)

    @property
    def muted(self) -> bool:
        """While muted the peer hears comfort noise. (The C API has no getter: this is the
        value last set through this object.)"""
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        check(lib.call_set_muted(self._handle, 1 if value else 0), "parley_call_set_muted",
              detailed=False)
        self._muted = bool(value)

    # -- audio (real-time path: no lock) -----------------------------------------------------

    def push(self, pcm: AudioBuffer) -> int:
        """Hands microphone PCM (interleaved int16: bytes-like little-endian, or a numpy
        int16 array) to the encoder. Returns the frames taken (fewer when ~200 ms are
        already waiting)."""
        address, samples, _keep = _input_pointer(pcm)
        if samples % self._channels:
            raise ValueError(f"{samples} samples is not a whole number of "
                             f"{self._channels}-channel frames")
        return check(lib.call_push_audio(self._handle, address, samples // self._channels),
                     "parley_call_push_audio", detailed=False)

    def pull(self, frames: int, *, numpy: bool = False) -> AudioBuffer:
        """`frames` frames of playout PCM: bytes (int16 little-endian), or with numpy=True a
        numpy int16 array (shape (frames,) mono, (frames, channels) otherwise)."""
        if frames < 0:
            raise ValueError("frames must not be negative")
        if numpy:
            import numpy as np

            shape = (frames,) if self._channels == 1 else (frames, self._channels)
            arr = np.empty(shape, dtype=np.int16)
            check(lib.call_pull_audio(self._handle, arr.ctypes.data, frames),
                  "parley_call_pull_audio", detailed=False)
            return arr
        buf = ctypes.create_string_buffer(frames * self._channels * 2)
        check(lib.call_pull_audio(self._handle, buf, frames), "parley_call_pull_audio",
              detailed=False)
        return _to_little_endian(buf.raw)

    def pull_into(self, out: AudioBuffer) -> None:
        """Fills a writable buffer (bytearray, memoryview, array('h'), numpy int16 array)
        with playout PCM, without allocating."""
        address, samples, _keep = _output_pointer(out)
        if samples % self._channels:
            raise ValueError(f"{samples} samples is not a whole number of "
                             f"{self._channels}-channel frames")
        check(lib.call_pull_audio(self._handle, address, samples // self._channels),
              "parley_call_pull_audio", detailed=False)

    # -- float32 audio (real-time path: no lock) ---------------------------------------------

    def push_audio_float(self, pcm: FloatAudioBuffer) -> int:
        """push() for float32 PCM, nominally -1.0 .. 1.0 (beyond is clipped, NaN is silence;
        parley_call_push_audio_float): an array('f'), a memoryview of format 'f', raw bytes
        (float32 little-endian) or a numpy float32 array, interleaved. Returns the frames
        taken. Do not mix it with push() on one call at the same time."""
        address, samples, _keep = _input_pointer(pcm, _FLOAT32)
        if samples % self._channels:
            raise ValueError(f"{samples} samples is not a whole number of "
                             f"{self._channels}-channel frames")
        return check(lib.call_push_audio_float(self._handle, address, samples // self._channels),
                     "parley_call_push_audio_float", detailed=False)

    def pull_audio_float(self, frames: int, *, numpy: bool = False) -> FloatAudioBuffer:
        """`frames` frames of playout PCM as float32 (-1.0 .. 1.0;
        parley_call_pull_audio_float): an array('f'), or with numpy=True a numpy float32
        array (shape (frames,) mono, (frames, channels) otherwise)."""
        if frames < 0:
            raise ValueError("frames must not be negative")
        if numpy:
            import numpy as np

            shape = (frames,) if self._channels == 1 else (frames, self._channels)
            arr = np.empty(shape, dtype=np.float32)
            check(lib.call_pull_audio_float(self._handle, arr.ctypes.data, frames),
                  "parley_call_pull_audio_float", detailed=False)
            return arr
        import array

        out = array.array("f", bytes(4 * frames * self._channels))
        self.pull_audio_float_into(out)
        return out

    def pull_audio_float_into(self, out: FloatAudioBuffer) -> None:
        """Fills a writable float32 buffer (array('f'), a memoryview of format 'f', a numpy
        float32 array) with playout PCM, without allocating."""
        address, samples, _keep = _output_pointer(out, _FLOAT32)
        if samples % self._channels:
            raise ValueError(f"{samples} samples is not a whole number of "
                             f"{self._channels}-channel frames")
        check(lib.call_pull_audio_float(self._handle, address, samples // self._channels),
              "parley_call_pull_audio_float", detailed=False)

    # -- lifetime ----------------------------------------------------------------------------

    def release(self) -> None:
        """Ends the call if it is still going and frees the handle (parley_call_destroy: no
        event names it afterwards). No audio thread may be inside push()/pull().
        Idempotent."""
        with self._context._lock:
            ptr, self._ptr = self._ptr, None
            if ptr is None:
                return
            self._context._calls.pop(self._token, None)
            lib.call_destroy(ptr)

    close = release

    def __repr__(self) -> str:
        state = "released" if self._ptr is None else getattr(self._state, "name", self._state)
        return f"<parley.Call {'from' if self.incoming else 'to'} {self.peer[:12]} {state}>"


# --------------------------------------------------------------------------------------------
# Audio buffers. int16: bytes-like objects are little-endian int16 (raw bytes) or int16
# samples ('h'), numpy arrays must be int16. float32 (the _float functions): raw bytes are
# little-endian float32, typed buffers must be 'f', numpy arrays float32.

_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class _SampleType:
    name: str
    size: int  # bytes per sample
    formats: Tuple[str, ...]  # memoryview formats of typed buffers (native order)
    array_code: str  # array module type code
    numpy_kind: str  # numpy dtype kind


_RAW_FORMATS = ("B", "b", "c")
_INT16 = _SampleType("int16", 2, ("h", "<h", "=h"), "h", "i")
_FLOAT32 = _SampleType("float32", 4, ("f", "<f", "=f"), "f", "f")


def _to_little_endian(native: bytes) -> bytes:
    if not _BIG_ENDIAN:
        return native
    import array

    a = array.array("h", native)
    a.byteswap()
    return a.tobytes()


def _numpy_array(obj: Any, sample: _SampleType = _INT16) -> Any:
    np = sys.modules.get("numpy")  # an ndarray implies numpy is imported already
    if np is not None and isinstance(obj, np.ndarray):
        if obj.dtype.kind != sample.numpy_kind or obj.dtype.itemsize != sample.size:
            raise TypeError(f"audio arrays must be {sample.name}, not {obj.dtype}")
        return obj
    return None


def _input_pointer(pcm: Any, sample: _SampleType = _INT16):
    """(address or bytes, samples, keep-alive) for a const int16_t * / const float *
    parameter."""
    arr = _numpy_array(pcm, sample)
    if arr is not None:
        import numpy as np

        arr = np.ascontiguousarray(arr, dtype=sample.name)  # native order; copies if needed
        return arr.ctypes.data, arr.size, arr
    view = memoryview(pcm)
    if view.format not in _RAW_FORMATS + sample.formats:
        raise TypeError(f"audio must be {sample.name} samples or raw bytes, not format "
                        f"{view.format!r}")
    nbytes = view.nbytes
    if nbytes % sample.size:
        raise ValueError(f"{nbytes} bytes is not a whole number of {sample.name} samples")
    if isinstance(pcm, bytes) and not _BIG_ENDIAN:
        return pcm, nbytes // sample.size, pcm  # ctypes passes the bytes' own storage
    data = view.tobytes()
    if _BIG_ENDIAN and view.format in _RAW_FORMATS:
        import array

        a = array.array(sample.array_code, data)
        a.byteswap()
        data = a.tobytes()
    return data, nbytes // sample.size, data


def _output_pointer(out: Any, sample: _SampleType = _INT16):
    """(address, samples, keep-alive) for an int16_t * / float * output parameter, written
    in place."""
    arr = _numpy_array(out, sample)
    if arr is not None:
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            raise ValueError("the output array must be C-contiguous and writable")
        if not arr.dtype.isnative:
            raise ValueError("the output array must be in native byte order")
        return arr.ctypes.data, arr.size, arr
    view = memoryview(out)
    if view.readonly or not view.c_contiguous:
        raise ValueError("the output buffer must be writable and contiguous")
    if view.format not in _RAW_FORMATS + sample.formats:
        raise TypeError(f"audio must be {sample.name} samples or raw bytes, not format "
                        f"{view.format!r}")
    if view.nbytes % sample.size:
        raise ValueError(f"{view.nbytes} bytes is not a whole number of {sample.name} samples")
    if _BIG_ENDIAN and view.format in _RAW_FORMATS:
        raise NotImplementedError("raw byte output buffers on big-endian hosts")
    holder = (ctypes.c_char * view.nbytes).from_buffer(view.cast("B"))
    return ctypes.addressof(holder), view.nbytes // sample.size, holder
