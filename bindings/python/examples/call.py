#!/usr/bin/env python3
"""Two parties, one process, a real call through a parley relay.

Alice calls Bob; Bob accepts; an audio thread plays a tone into Alice's call and records
what Bob's call plays out, 20 ms at a time like a sound card would; the main thread handles
events. Then Alice sends a datagram and hangs up. Prints the tone Bob heard.

    PARLEY_LIBRARY=build/libparley.so python3 call.py --relay-binary build/src/relay/parley-relay
    PARLEY_LIBRARY=build/libparley.so python3 call.py --relay 203.0.113.5:7350 --relay-fp HEX

Exit status 0 when Bob heard the tone (within 10 Hz), 1 otherwise. Given --relay without
--relay-fp, it only shows the fingerprint that relay presents (exit status 2): trusting it is
your decision, so check it against the one parley-relay printed and pass it as --relay-fp.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

try:
    import parley
except ImportError:  # run from a source checkout without PYTHONPATH
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import parley
from parley.testing import RelayProcess, dominant_frequency, rms, sine

RATE = 48000
CHUNK = RATE // 50  # 20 ms


def audio_thread(mic: parley.Call, speaker: parley.Call, seconds: float, frequency: float,
                 recording: bytearray) -> None:
    """One thread pushes and pulls, paced by the clock (the C API's real-time functions
    must each be called from one thread at a time)."""
    start = time.monotonic()
    for tick in range(int(seconds * 50)):
        mic.push(sine(frequency, RATE, tick * CHUNK, CHUNK))
        recording += speaker.pull(CHUNK)
        delay = start + (tick + 1) * CHUNK / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def is_registered(e: parley.Event) -> bool:
    return e.type == parley.EventType.RELAY_STATE and e.relay_state == parley.RelayState.REGISTERED


def presented_fingerprint(relay_address: str) -> str:
    """The identity the relay presents: a context without a relay fingerprint stops at
    RelayState.UNTRUSTED (it sent the relay nothing of ours) and the event names it."""
    with parley.Identity.generate() as probe_id, parley.Context(probe_id, relay_address) as probe:
        event = probe.wait_for(lambda e: e.relay_state == parley.RelayState.UNTRUSTED, 10)
        return event.peer


def run(relay_address: str, relay_fp: str | None, seconds: float, frequency: float) -> int:
    with parley.Identity.generate() as alice_id, parley.Identity.generate() as bob_id, \
            parley.Context(alice_id, relay_address, relay_fp, include_loopback=True) as alice, \
            parley.Context(bob_id, relay_address, relay_fp, include_loopback=True) as bob:
        alice.wait_for(is_registered, 10)
        bob.wait_for(is_registered, 10)
        print(f"alice {alice.fingerprint[:16]}… and bob {bob.fingerprint[:16]}… registered")

        to_bob = alice.call(bob.fingerprint)
        ring = bob.wait_for(lambda e: e.type == parley.EventType.INCOMING_CALL, 10)
        from_alice = ring.call
        assert from_alice is not None
        print(f"bob: incoming call from {ring.peer[:16]}…, accepting")
        from_alice.accept()
        for ctx, call in ((alice, to_bob), (bob, from_alice)):
            ctx.wait_for(lambda e: e.call is call and e.call_state == parley.CallState.ACTIVE, 10)
        print("call active")

        recording = bytearray()
        audio = threading.Thread(target=audio_thread,
                                 args=(to_bob, from_alice, seconds, frequency, recording))
        audio.start()
        while audio.is_alive():  # the main thread keeps draining events meanwhile
            for event in alice.events(0.05):
                print("alice:", event)
            for event in bob.events(0):
                print("bob:  ", event)
        audio.join()

        tail = bytes(recording[-len(recording) // 2:])
        heard = dominant_frequency(tail, RATE)
        print(f"bob heard {heard:.1f} Hz at RMS {rms(tail):.0f} (alice sent {frequency:g} Hz)")
        stats = to_bob.stats()
        print(f"alice: path {stats.path.name}, {stats.frames_sent} frames sent, "
              f"profile {stats.profile}")

        to_bob.send_datagram(b"bye")
        try:
            got = bob.wait_for(lambda e: e.type == parley.EventType.DATAGRAM, 2)
            print(f"bob: datagram {got.data!r}")
        except TimeoutError:
            print("bob: the datagram was lost (datagrams are unreliable)")

        to_bob.hangup()
        ended = bob.wait_for(
            lambda e: e.call is from_alice and e.call_state == parley.CallState.ENDED, 10)
        print(f"bob: call ended ({ended.error.name if ended.error else 'normal hangup'})")
        return 0 if abs(heard - frequency) <= 10 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--relay", help="a running relay, ip:port")
    where.add_argument("--relay-binary", help="start this parley-relay on loopback")
    parser.add_argument("--relay-fp", help="the relay's fingerprint (without it: show the one "
                        "the relay presents, and stop)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--frequency", type=float, default=440.0)
    args = parser.parse_args()
    print(f"libparley {parley.version_string()} ({parley.library_path()})")
    if args.relay and not args.relay_fp:
        fp = presented_fingerprint(args.relay)
        print(f"the relay at {args.relay} presents {fp}; if that is the one parley-relay "
              f"printed, run again with --relay-fp {fp}")
        return 2
    if args.relay:
        return run(args.relay, args.relay_fp, args.seconds, args.frequency)
    with RelayProcess(args.relay_binary) as relay:
        print(f"relay {relay.address} {relay.fingerprint[:16]}…")
        return run(relay.address, relay.fingerprint, args.seconds, args.frequency)


if __name__ == "__main__":
    sys.exit(main())
