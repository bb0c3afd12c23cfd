#!/usr/bin/python3
"""How often calls go direct through hard NATs, and how soon: N calls per NAT pair in the NAT
lab (tests/natlab/test_hard_nat.py), each a fresh pair of sites, coturn as the STUN server
next to the relay.

Pairs (caller side first; either may call, alternating):

* ``seq-prc``: sequential symmetric <-> port-restricted, port prediction (the allocator moved
  on by 0..9 other flows between the observation and the call);
* ``sym-prc``, ``sym-none``: random symmetric <-> port-restricted / no NAT, no port mapping
  (birthday probing is not built: the relay, except toward a host without NAT);
* ``sym-sym``: random symmetric <-> random symmetric (theory: the relay);
* ``symPM-sym``, ``symPM-prc``: random symmetric whose router runs miniupnpd (NAT-PMP, PCP
  and UPnP) and which asks for a port, <-> symmetric / port-restricted.

Per pair: calls direct within the budget (3 s + 2 s margin), median / p90 / max time to
direct, and the most ICE checks one attempt sent. The reference row is the field number of
libp2p's DCUtR hole punching (70 % +- 7.1 % of attempts succeed; Trautwein et al., 2022/2024).

    sudo bench/hard_nat_bench.py [--calls 20] [--pairs seq-prc,sym-prc,...] [--markdown]
        [--relay build-release/src/relay/parley-relay]
        [--peer build-release/tests/parley-call-peer]

Nothing here is a test; it is run by hand. Results: docs/performance.md "Hard NATs".
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

from test_hard_nat import BIRTHDAY_WAIT_S, HardNatCase  # noqa: E402

# name: (hard site (type, port_mapping), other site type, caller flags for the hard side)
PAIRS = {
    "seq-prc": (("symmetric-seq", None), "port-restricted", ()),
    "sym-prc": (("symmetric", None), "port-restricted", ()),
    "sym-none": (("symmetric", None), "none", ()),
    "sym-fc": (("symmetric", None), "full-cone", ()),
    "sym-sym": (("symmetric", None), "symmetric", ()),
    "symPM-sym": (("symmetric", ("natpmp", "pcp", "upnp")), "symmetric",
                  ("--port-mapping", "pcp,natpmp,upnp")),
    "symPM-prc": (("symmetric", ("natpmp", "pcp", "upnp")), "port-restricted",
                  ("--port-mapping", "pcp,natpmp,upnp")),
}
REFERENCE = "libp2p DCUtR, field measurement (reference, not measured here): 70 % +- 7.1 %"


def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(0.9 * len(xs)) - 1)]


class Bench(HardNatCase):
    def runTest(self):  # unittest wants one; the bench drives the case by hand
        pass


def run_pair(name, calls):
    (hard_type, pm), other_type, flags = PAIRS[name]
    rows = []
    for i in range(calls):
        case = Bench()
        case.setUp()
        try:
            lab = case.env.lab
            hard = lab.add_site("h", hard_type, hosts=2, port_mapping=pm)
            other = lab.add_site("o", other_type)
            caller, callee = (hard, other) if i % 2 == 0 else (other, hard)
            burn = (hard, i % 10) if callee is hard and hard_type == "symmetric-seq" else None
            path, st, c = case.one_call(
                caller, callee, f"{name}{i}", burn=burn,
                caller_extra=flags if caller is hard else (),
                callee_extra=flags if callee is hard else (), wait_s=BIRTHDAY_WAIT_S)
            t = max(st[0]["time_to_direct_ms"], st[1]["time_to_direct_ms"])
            checks = max(st[0]["ice_checks_max_attempt"], st[1]["ice_checks_max_attempt"])
            rows.append((path, t, checks))
            print(f"  {name} #{i + 1}: {path}" + (f" in {t} ms" if path == "direct" else "")
                  + f", at most {checks} checks per attempt", flush=True)
        finally:
            case.doCleanups()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--pairs", default=",".join(PAIRS))
    ap.add_argument("--relay", default=os.path.join(ROOT, "build-release/src/relay/parley-relay"))
    ap.add_argument("--peer", default=os.path.join(ROOT, "build-release/tests/parley-call-peer"))
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    os.environ["PARLEY_RELAY"] = args.relay
    os.environ["PARLEY_CALL_PEER"] = args.peer
    results = {name: run_pair(name, args.calls) for name in args.pairs.split(",")}
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n{when}, {platform.node()}, {os.cpu_count()} cores, {platform.release()}")
    head = ("| pair | calls | direct | direct rate | to direct p50 | p90 | max | "
            "checks per attempt (max) |")
    print(head if args.markdown else head.replace("|", " "))
    if args.markdown:
        print("|" + "---|" * 8)
    for name, rows in results.items():
        took = [t for p, t, _ in rows if p == "direct"]
        n = len(rows)
        cells = [name, str(n), str(len(took)), f"{100 * len(took) / n:.0f} %",
                 f"{statistics.median(took):.0f} ms" if took else "-",
                 f"{p90(took):.0f} ms" if took else "-", f"{max(took)} ms" if took else "-",
                 str(max(c for _, _, c in rows))]
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))
    print(REFERENCE)


if __name__ == "__main__":
    main()
