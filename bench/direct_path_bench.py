#!/usr/bin/python3
"""Direct-path set-up times of parley calls behind the NAT lab's routers.

For each NAT pair, N calls (default 20) one after the other between two parley-call-peer
processes through parley-relay, in the NAT lab (tests/natlab: network namespaces + nftables;
needs root).  Per call it records, from the peers' own JSON events:

* first frame: ``first_frame.since_active`` -- ms from the call becoming active (on that
  side) to the first media frame received (on the relay path, normally); the later of the
  two sides, i.e. until both hear each other;
* time to direct: ``time_to_direct_ms`` from each side's stats -- ms from active to media
  moving to the direct path; the later of the two sides.  Pairs where NAT theory rules out a
  direct path (symmetric vs symmetric) show "relay".

and prints the median and p90 of each per pair.  Every call uses fresh identities, and the
routers' conntrack tables are flushed before it, so each call meets cold NATs (no pinhole
left open by the previous call).

    sudo bench/direct_path_bench.py [--calls 20] [--pairs none/none,...]
        [--relay build-release/src/relay/parley-relay]
        [--peer build-release/tests/parley-call-peer] [--markdown]

Nothing here is a test: it asserts nothing beyond "the call worked", and it is run by hand.
"""

import argparse
import datetime
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "natlab"))

from natlab import Lab  # noqa: E402
from test_calls import (ACTIVE_TIMEOUT, BUDGET_MS, MARGIN_S, READY_TIMEOUT,  # noqa: E402
                        Peer, Relay)

# (label, caller NAT, callee NAT, expected path)
PAIRS = {
    "none/none": ("none", "none", "direct"),
    "port-restricted/port-restricted": ("port-restricted", "port-restricted", "direct"),
    "full-cone/symmetric": ("full-cone", "symmetric", "direct"),
    "double/port-restricted": ("double", "port-restricted", "direct"),
    "same-lan": ("same-lan", "same-lan", "direct"),
    "symmetric/symmetric": ("symmetric", "symmetric", "relay"),
}
DEFAULT_PAIRS = ("none/none", "port-restricted/port-restricted", "full-cone/symmetric",
                 "same-lan", "symmetric/symmetric")


def nearest_rank(values, q):
    """The q-quantile by the nearest-rank method (p90 of 20 values = the 18th smallest)."""
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def machine_description():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    distro = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{os.cpu_count()}-core {cpu}, {distro}, kernel {platform.release()}"


def build(lab, caller_nat, callee_nat):
    """Sites for one pair; (caller node, callee node, routers to flush)."""
    if caller_nat == callee_nat == "same-lan":
        site = lab.add_site("lan", "same-lan")
        return site.hosts[0], site.hosts[1], list(site.routers)
    a = lab.add_site("a", caller_nat)
    b = lab.add_site("b", callee_nat)
    return a.host, b.host, list(a.routers) + list(b.routers)


def one_call(lab, relay, peer_bin, tmp, i, caller_node, callee_node, expect):
    callee = Peer(lab, callee_node, peer_bin, relay, os.path.join(tmp, f"callee{i}.seed"),
                  name="callee", log_level="warn")
    caller = None
    try:
        callee.wait_ready(READY_TIMEOUT)
        caller = Peer(lab, caller_node, peer_bin, relay, os.path.join(tmp, f"caller{i}.seed"),
                      name="caller", call=callee.fp, log_level="warn")
        caller.wait_ready(READY_TIMEOUT)
        for p in (caller, callee):
            p.wait_event("active", ACTIVE_TIMEOUT)
        first = [p.wait_event("first_frame", 5.0)[1] for p in (caller, callee)]
        ttd = None
        if expect == "direct":
            window = BUDGET_MS / 1000 + MARGIN_S
            deadline = time.monotonic() + window
            for p in (caller, callee):
                p.wait_event("path", max(0.05, deadline - time.monotonic()),
                             pred=lambda e: e.get("to") == "direct")
            st = [p.stats() for p in (caller, callee)]
            ttd = max(s["time_to_direct_ms"] for s in st)
        return {"first": max(ev["since_active"] for ev in first),
                "first_via": "/".join(ev["via"] for ev in first), "ttd": ttd}
    finally:
        for p in (caller, callee):
            if p is not None:
                p.quit()


def run_pair(label, relay_bin, peer_bin, calls, verbose):
    caller_nat, callee_nat, expect = PAIRS[label]
    tmp = tempfile.mkdtemp(prefix="parley-bench-")
    try:
        with Lab() as lab:
            server = lab.add_server()
            relay = Relay(lab, server, relay_bin, os.path.join(tmp, "relay.seed"))
            caller_node, callee_node, routers = build(lab, caller_nat, callee_nat)
            rows, failures = [], []
            for i in range(calls):
                for r in routers:
                    lab.flush_conntrack(r)
                t0 = time.monotonic()
                try:
                    res = one_call(lab, relay, peer_bin, tmp, i, caller_node, callee_node,
                                   expect)
                except (TimeoutError, AssertionError, RuntimeError) as e:
                    # A failed call is reported, not averaged in (the matrix test is where
                    # failures are judged).
                    print(f"  {label} #{i + 1}: FAILED: {str(e)[:2000]}", file=sys.stderr)
                    failures.append(str(e))
                    continue
                res["wall"] = time.monotonic() - t0
                rows.append(res)
                if verbose:
                    print(f"  {label} #{i + 1}: first frame {res['first']} ms "
                          f"({res['first_via']}), time to direct {res['ttd']} ms, "
                          f"{res['wall']:.2f}s", file=sys.stderr)
            return rows, failures
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    here_build = os.path.join(ROOT, "build-release")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--relay", default=os.environ.get(
        "PARLEY_RELAY", os.path.join(here_build, "src", "relay", "parley-relay")))
    ap.add_argument("--peer", default=os.environ.get(
        "PARLEY_CALL_PEER", os.path.join(here_build, "tests", "parley-call-peer")))
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--pairs", default=",".join(DEFAULT_PAIRS),
                    help=f"comma-separated, from: {', '.join(PAIRS)}")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per call")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("direct_path_bench: needs root (network namespaces, nftables)")
    for path in (args.relay, args.peer):
        if not os.access(path, os.X_OK):
            sys.exit(f"direct_path_bench: {path} is not executable (build it, or pass "
                     f"--relay / --peer)")
    pairs = [p.strip() for p in args.pairs.split(",") if p.strip()]
    for p in pairs:
        if p not in PAIRS:
            sys.exit(f"direct_path_bench: unknown pair {p!r}; known: {', '.join(PAIRS)}")

    print(f"{datetime.date.today()}, {machine_description()}; {args.calls} calls per pair, "
          f"50 fps each way, --budget-ms {BUDGET_MS}", file=sys.stderr)
    t_all = time.monotonic()
    table = []
    for label in pairs:
        t0 = time.monotonic()
        rows, failures = run_pair(label, args.relay, args.peer, args.calls, args.verbose)
        if not rows:
            print(f"{label}: every call failed", file=sys.stderr)
            table.append({"pair": label, "n": 0, "failed": len(failures), "first_med": None,
                          "first_p90": None, "ttd_med": None, "ttd_p90": None,
                          "ttd_max": None, "ttd_slow": 0, "direct": 0,
                          "seconds": time.monotonic() - t0})
            continue
        first = [r["first"] for r in rows]
        ttd = [r["ttd"] for r in rows if r["ttd"] is not None]
        table.append({
            "pair": label, "n": len(rows),
            "first_med": statistics.median(first), "first_p90": nearest_rank(first, 0.9),
            "ttd_med": statistics.median(ttd) if ttd else None,
            "ttd_p90": nearest_rank(ttd, 0.9) if ttd else None,
            "ttd_max": max(ttd) if ttd else None,
            "ttd_slow": sum(1 for v in ttd if v > 1000),
            "direct": len(ttd), "failed": len(failures), "seconds": time.monotonic() - t0,
        })
        print(f"{label}: done in {table[-1]['seconds']:.1f}s", file=sys.stderr)

    def ms(v):
        return "relay" if v is None else f"{v:g}"

    def fm(v):
        return "-" if v is None else f"{v:g}"

    hdr = ("pair (caller/callee)", "calls", "first frame p50", "first frame p90",
           "to direct p50", "to direct p90", "to direct max", "> 1 s")
    lines = [hdr]
    for t in table:
        n = f"{t['n']}" + (f" ({t['failed']} failed)" if t["failed"] else "")
        lines.append((t["pair"], n, fm(t["first_med"]), fm(t["first_p90"]),
                      ms(t["ttd_med"]), ms(t["ttd_p90"]), ms(t["ttd_max"]),
                      str(t["ttd_slow"]) if t["ttd_med"] is not None else "-"))
    widths = [max(len(r[i]) for r in lines) for i in range(len(hdr))]
    print()
    for k, r in enumerate(lines):
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                        for i, c in enumerate(r)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"(ms since the call became active; total {time.monotonic() - t_all:.0f}s)")
    if args.markdown:
        def unit(v):
            return ms(v) + ("" if v is None else " ms")

        print("\n| pair (caller/callee) | calls | first frame p50 | first frame p90 | "
              "to direct p50 | to direct p90 | to direct max | > 1 s |\n"
              "|---|---|---|---|---|---|---|---|")
        for t in table:
            print(f"| {t['pair']} | {t['n']} | {fm(t['first_med'])} ms | "
                  f"{fm(t['first_p90'])} ms | {unit(t['ttd_med'])} | {unit(t['ttd_p90'])} | "
                  f"{unit(t['ttd_max'])} | {t['ttd_slow'] if t['ttd_med'] is not None else '-'} |")


if __name__ == "__main__":
    main()
