#!/usr/bin/python3
"""Network changes in the middle of direct calls: how long media is interrupted and how long
until the call is direct again.

The NAT lab's phone (tests/natlab/test_network_change.py, ``NetworkMoveTest``): a direct call
between two port-restricted sites; the caller's host moves between two routers ("wifi" and
"cell", each port-restricted) with its process and sockets kept -- a new LAN address and a
new public address each time.  Cases, N moves each (default 20, alternating the direction):

* ``host``: the host calls ``network_changed`` right after each move (the watch is off);
* ``watch``: nobody calls anything; the context's rtnetlink watch notices (500 ms debounce).

Per move it records (a) the media gap: the callee's longest run of missing frames x 20 ms,
i.e. how long the caller's voice did not arrive; (b) the time from the change to both sides
on a direct connection of a new ICE generation; and whether the relay connection had to
register again.  It prints median and p90 of each per case, and the anchors other systems
publish (Jitsi's in-place ICE restart, Tailscale, iroh) for comparison.

    sudo bench/network_change_bench.py [--moves 20] [--cases host,watch] [--markdown]
        [--relay build-release/src/relay/parley-relay]
        [--peer build-release/tests/parley-call-peer]

Nothing here is a test: it asserts nothing beyond what the test's helpers check, and it is run
by hand.  Results: docs/performance.md "Network changes".
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "natlab"))

from test_network_change import HOST_CALL_BOUND_S, WATCH_BOUND_S, NetworkMoveTest  # noqa: E402

CASES = {
    "host": dict(watch=False, host_calls=True, bound=HOST_CALL_BOUND_S),
    "watch": dict(watch=True, host_calls=False, bound=WATCH_BOUND_S),
}
ANCHORS = ("anchors (published, not measured here): Jitsi's in-place ICE restart cuts over in "
           "801 ms; Tailscale debounces link changes 1 s, then rides its relay until a new "
           "path is found; iroh re-punches at most every 5 s")


def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(0.9 * len(xs)) - 1)]


def run_case(name, moves):
    spec = CASES[name]
    t = NetworkMoveTest("test_moves_with_the_host_calling_network_changed")
    t.setUp()
    try:
        call = t.start_call(f"bench-{name}", spec["watch"])
        rows = []
        for k in range(moves):
            to = t.cell if k % 2 == 0 else t.wifi
            r = t.move_and_measure(call, to, spec["bound"] * 2, spec["host_calls"])
            print(f"  {name} {r['move']}: direct {r['took_ms']:.0f} ms ({'yes' if r['met'] else 'NO'}), "
                  f"gap {r['hole_ms']} ms, re-registered {r['reregistered']}", flush=True)
            rows.append(r)
        ended = call.caller.events("ended") + call.callee.events("ended")
        return rows, ended
    finally:
        t.doCleanups()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moves", type=int, default=20)
    ap.add_argument("--cases", default="host,watch")
    ap.add_argument("--relay", default=os.path.join(ROOT, "build-release/src/relay/parley-relay"))
    ap.add_argument("--peer", default=os.path.join(ROOT, "build-release/tests/parley-call-peer"))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    os.environ["PARLEY_RELAY"] = args.relay
    os.environ["PARLEY_CALL_PEER"] = args.peer
    results = {}
    for name in args.cases.split(","):
        results[name] = run_case(name, args.moves)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{when}, {platform.node()}, {os.cpu_count()} cores, {platform.release()}")
    head = ("| case | moves | calls dropped | direct again (within bound) | to direct p50 | p90 | "
            "max | media gap p50 | p90 | max | relay re-registered |")
    print(head if args.markdown else head.replace("|", " "))
    if args.markdown:
        print("|" + "---|" * 11)
    for name, (rows, ended) in results.items():
        took = [r["took_ms"] for r in rows if r["met"]]
        gaps = [r["hole_ms"] for r in rows]
        within = sum(1 for r in rows if r["met"] and r["took_ms"] <= CASES[name]["bound"] * 1000)
        cells = [name, str(len(rows)), str(len(ended)), f"{within}/{len(rows)}",
                 f"{statistics.median(took):.0f} ms" if took else "-",
                 f"{p90(took):.0f} ms" if took else "-", f"{max(took):.0f} ms" if took else "-",
                 f"{statistics.median(gaps):.0f} ms", f"{p90(gaps)} ms", f"{max(gaps)} ms",
                 str(sum(1 for r in rows if r["reregistered"]))]
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))
    print(ANCHORS)


if __name__ == "__main__":
    main()
