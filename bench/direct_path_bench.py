#!/usr/bin/python3
"""Direct-path set-up times of parley calls behind the NAT lab's routers.

For each NAT pair, N calls (default 20) one after the other between two parley-call-peer
processes through parley-relay, in the NAT lab (tests/natlab: network namespaces + nftables;
needs root).  Per call it records, from the peers' own JSON events:

* first frame: ``first_frame.since_active`` -- ms from the call becoming active (on that
  side) to the first media frame received (on the relay path, normally); the later of the
  two sides, i.e. until both hear each other;
* time to direct: ``time_to_direct_ms`` from each side's stats -- ms from active to media
  moving to the direct path; the later of the two sides;
* direct share and family: a call counts as direct when both sides report the switch within
  the direct budget (plus a margin); the family is the one of the direct pair's remote
  address, or "IPv6->NAT64->IPv4" when a side's remote is in the NAT64 well-known prefix
  64:ff9b::/96 (an IPv6-only party paired with the peer's IPv4 candidate at its synthesized
  address; the IPv4 side then sees the NAT64 gateway's IPv4 address).  Pairs where no call
  went direct (symmetric vs symmetric) show "relay".

and prints the median and p90 of each per pair.  Every call uses fresh identities, and the
routers' conntrack tables are flushed before it, so each call meets cold NATs and firewalls
(no pinhole left open by the previous call).

The IPv6 pairs (``PAIRS_V6``) use the lab's IPv6 sites (tests/natlab/README.md, "IPv6") and
the relay set-ups of tests/natlab/test_ipv6_calls.py: a relay listening on both families, or,
for the NAT64 pair, an IPv4-only relay known by an A record only (reached through DNS64 +
NAT64).  The pair with the library's default sockets (no --bind, no --bind6) dials the relay
by a name with an A and an AAAA record, as tests/natlab/test_happy_eyeballs.py does.  They
need the IPv6 lab's packages (tayga and unbound for the NAT64 pair, unbound for the named
relays).

    sudo bench/direct_path_bench.py [--calls 20] [--pairs none/none,...|ipv6|all] [--rtt-ms 0,150,...]
        [--relay build-release/src/relay/parley-relay]
        [--peer build-release/tests/parley-call-peer] [--markdown]

Nothing here is a test: it asserts nothing beyond "the call worked", and it is run by hand.
"""

import argparse
import collections
import datetime
import ipaddress
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import types
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "natlab"))

from natlab import DNS_ZONE, Lab, check_ipv6_prerequisites, hostport  # noqa: E402
from test_calls import (ACTIVE_TIMEOUT, BUDGET_MS, HOST_PORT, MARGIN_S,  # noqa: E402
                        READY_TIMEOUT, Peer, Relay)
from test_ipv6_calls import PORT  # noqa: E402

# One party: its site type, add_site options, and its sockets --
#   "v4":    --bind <ip>:40000, dials the relay's IPv4 address;
#   "v6":    --bind [<ip6>]:40000 (an IPv6-only host), dials the relay's IPv6 address;
#   "v4+v6": --bind <ip>:40000 and --bind6 [<ip6>]:40000, dials the relay's IPv4 address;
#   "default": neither --bind nor --bind6 (the library's default: a socket of each family),
#              dials the relay's IPv4 address.
# A relay known by name (relay "v4-name", "dual-name") is dialled by that name whatever the
# sockets.
Party = collections.namedtuple("Party", "nat site_kw sock")
# relay: "v4" (203.0.113.10:3478 only, the IPv4 lab exactly as it always was), "dual" (also
# [2001:db8:0:ff::10]:3478), "v4-name" (IPv4 only, by an A-only name in the lab DNS),
# "dual-name" (both families, by a name with an A and an AAAA record: Happy Eyeballs).
Pair = collections.namedtuple("Pair", "caller callee relay expect")


def _v4(nat):
    return Party(nat, {}, "v4")


PAIRS_V4 = {
    "none/none": Pair(_v4("none"), _v4("none"), "v4", "direct"),
    "port-restricted/port-restricted": Pair(_v4("port-restricted"), _v4("port-restricted"),
                                            "v4", "direct"),
    "full-cone/symmetric": Pair(_v4("full-cone"), _v4("symmetric"), "v4", "direct"),
    "double/port-restricted": Pair(_v4("double"), _v4("port-restricted"), "v4", "direct"),
    "same-lan": Pair(_v4("same-lan"), _v4("same-lan"), "v4", "direct"),
    "symmetric/symmetric": Pair(_v4("symmetric"), _v4("symmetric"), "v4", "relay"),
}
# The first four are the cells of tests/natlab/test_ipv6_calls.py; "expect" is what that test
# asserts (the NAT64 one: direct, the IPv6-only side pairing the peer's IPv4 candidates at
# their synthesized 64:ff9b:: addresses, after RFC 7050 prefix discovery).  dual-stack/dual-stack
# (port-restricted IPv4, --bind6) can go direct on either family, so it shows which one ICE
# ends up on; dual-stack-default/dual-stack-default is the same sites with no socket options
# at all and the relay by name, what an application that sets nothing gets.
_V6FW = Party("v6-firewall", {}, "v6")
PAIRS_V6 = {
    "v6-firewall/v6-firewall": Pair(_V6FW, _V6FW, "dual", "direct"),
    "dual-stack-sym/dual-stack-sym": Pair(
        Party("dual-stack", {"v4nat": "symmetric"}, "v4+v6"),
        Party("dual-stack", {"v4nat": "symmetric"}, "v4+v6"), "dual", "direct"),
    "v6-only-nat64/port-restricted": Pair(Party("v6-only-nat64", {}, "v6"),
                                          _v4("port-restricted"), "v4-name", "direct"),
    "port-restricted/v6-firewall": Pair(_v4("port-restricted"), _V6FW, "dual", "relay"),
    "dual-stack/dual-stack": Pair(Party("dual-stack", {}, "v4+v6"),
                                  Party("dual-stack", {}, "v4+v6"), "dual", "direct"),
    "dual-stack-default/dual-stack-default": Pair(
        Party("dual-stack", {}, "default"), Party("dual-stack", {}, "default"), "dual-name",
        "direct"),
}
PAIRS = {**PAIRS_V4, **PAIRS_V6}
DEFAULT_PAIRS = ("none/none", "port-restricted/port-restricted", "full-cone/symmetric",
                 "same-lan", "symmetric/symmetric")
PAIR_GROUPS = {"ipv4": tuple(PAIRS_V4), "ipv6": tuple(PAIRS_V6), "all": tuple(PAIRS),
               "default": DEFAULT_PAIRS}
RELAY4_NAME = "relay4"
RELAY_NAME = "relay"        # relay "dual-name": A and AAAA


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


def ipv6_pair(pair):
    return pair.relay != "v4" or any(p.sock != "v4" for p in (pair.caller, pair.callee))


def start_relay(lab, server, relay_bin, seed, kind):
    """The relay of one pair; {socket kind: the address a party with it dials}."""
    v4 = hostport(server.ip, PORT)
    if kind == "v4":
        relay = Relay(lab, server, relay_bin, seed)
        return relay, {"v4": relay.addr, "v6": None, "v4+v6": relay.addr,
                       "default": relay.addr}
    if kind == "dual":
        v6 = hostport(server.ip6, PORT)
        relay = Relay(lab, server, relay_bin, seed, listen=v4, extra=("--listen", v6))
        return relay, {"v4": v4, "v6": v6, "v4+v6": v4, "default": v4}
    if kind == "dual-name":
        relay = Relay(lab, server, relay_bin, seed, listen=v4,
                      extra=("--listen", hostport(server.ip6, PORT)))
        lab.add_dns({RELAY_NAME: [server.ip, server.ip6]})
        name = f"{RELAY_NAME}.{DNS_ZONE}:{PORT}"
        return relay, dict.fromkeys(("v4", "v6", "v4+v6", "default"), name)
    # An A record only: the IPv6-only party behind NAT64 gets a synthesized AAAA from its
    # DNS64, which is the path a real IPv6-only mobile network takes to an IPv4-only relay.
    relay = Relay(lab, server, relay_bin, seed, listen=v4)
    lab.add_dns({RELAY4_NAME: [server.ip]})
    name = f"{RELAY4_NAME}.{DNS_ZONE}:{PORT}"
    return relay, dict.fromkeys(("v4", "v6", "v4+v6", "default"), name)


def party_args(party, node):
    """(--bind, extra argv) of one party (Peer's bind "default": no --bind)."""
    if party.sock == "default":
        return "default", ()
    if party.sock == "v6":
        return hostport(node.ip6, HOST_PORT), ()
    bind = hostport(node.ip, HOST_PORT)
    if party.sock == "v4+v6":
        return bind, ("--bind6", hostport(node.ip6, HOST_PORT))
    return bind, ()


def build(lab, pair):
    """Sites for one pair; (caller (party, node), callee (party, node), routers to flush,
    the callee's IPv4 address as the caller reaches it)."""
    a, b = pair.caller, pair.callee
    if a.nat == b.nat == "same-lan":
        site = lab.add_site("lan", "same-lan")
        return (a, site.hosts[0]), (b, site.hosts[1]), list(site.routers), site.hosts[1].ip
    sa = lab.add_site("a", a.nat, **a.site_kw)
    sb = lab.add_site("b", b.nat, **b.site_kw)
    return (a, sa.host), (b, sb.host), list(sa.routers) + list(sb.routers), sb.public_ip


NAT64_WKP = ipaddress.ip_network("64:ff9b::/96")   # RFC 6052; the lab's hosts see only this


def address_of(candidate):
    """The address of a call peer's candidate text ("host [ip6]:port", "srflx ip:port")."""
    hp = candidate.split()[-1]
    return ipaddress.ip_address(hp[1:hp.index("]")] if hp.startswith("[")
                                else hp.rsplit(":", 1)[0])


def family_of(candidate):
    """"IPv6" or "IPv4" for a call peer's candidate text."""
    return f"IPv{address_of(candidate).version}"


def path_family(remotes):
    """The family of a direct call from both sides' remote candidates: "IPv6->NAT64->IPv4" when
    one side's remote is a synthesized NAT64 address (its peer's IPv4 candidate seen through
    64:ff9b::/96), else "IPv6", "IPv4", or "IPv4/IPv6" if the sides disagree."""
    if any(address_of(r) in NAT64_WKP for r in remotes):
        return "IPv6->NAT64->IPv4"
    return "/".join(sorted({family_of(r) for r in remotes}))


def one_call(lab, relay, peer_bin, tmp, i, caller, callee, relay_addrs, rtt_ms):
    def start(who, party_node, call=None):
        party, node = party_node
        bind, extra = party_args(party, node)
        via = types.SimpleNamespace(addr=relay_addrs[party.sock], fp=relay.fp)
        return Peer(lab, node, peer_bin, via, os.path.join(tmp, f"{who}{i}.seed"), name=who,
                    call=call, bind=bind, extra=extra, log_level="warn")

    callee_p = start("callee", callee)
    caller_p = None
    try:
        relay_callee = callee_p.wait_ready(READY_TIMEOUT).get("relay")
        caller_p = start("caller", caller, call=callee_p.fp)
        relay_caller = caller_p.wait_ready(READY_TIMEOUT).get("relay")
        peers = (caller_p, callee_p)
        for p in peers:
            p.wait_event("active", ACTIVE_TIMEOUT)
        first = [p.wait_event("first_frame", 5.0)[1] for p in peers]
        # Every pair gets the same window, the library's own direct budget plus the margin
        # for the switch to be reported: a pair expected to stay on the relay is measured,
        # not assumed (the direct share is what the table reports).
        deadline = time.monotonic() + BUDGET_MS / 1000 + MARGIN_S + 4 * rtt_ms / 1000
        switched = []
        for p in peers:
            try:
                switched.append(p.wait_event("path", max(0.05, deadline - time.monotonic()),
                                             pred=lambda e: e.get("to") == "direct")[1])
            except TimeoutError:
                switched.append(None)
        ttd = family = None
        if all(switched):
            st = [p.stats() for p in peers]
            ttd = max(s["time_to_direct_ms"] for s in st)
            family = path_family([ev["remote"] for ev in switched])
        return {"first": max(ev["since_active"] for ev in first),
                "first_via": "/".join(ev["via"] for ev in first), "ttd": ttd,
                "family": family, "remotes": [ev["remote"] if ev else None for ev in switched],
                "one_sided": sum(1 for ev in switched if ev) == 1,
                "relays": (relay_caller, relay_callee)}
    finally:
        for p in (caller_p, callee_p):
            if p is not None:
                p.quit()


def flush_all(lab, routers, v6):
    for r in routers:
        lab.flush_conntrack(r)
        # The ctnetlink flush names AF_INET but, without attributes, the kernel deletes every
        # family's entries (seen on 6.x): the IPv6 firewalls' pinholes go too.  A kernel that
        # filtered by family would leave them open and make the IPv6 calls warm, so check.
        if v6:
            left = [ln for ln in lab.conntrack(r).splitlines() if ln.startswith("ipv6")]
            if left:
                raise RuntimeError(f"{r.name}: IPv6 conntrack entries survived the flush "
                                   f"(the IPv6 pairs would not start cold): {left[:3]}")


def run_pair(label, relay_bin, peer_bin, calls, verbose, rtt_ms=0):
    pair = PAIRS[label]
    v6 = ipv6_pair(pair)
    if v6 and rtt_ms:
        raise unittest.SkipTest("the lab's delay line is IPv4 only")
    if v6:
        nat64 = "v6-only-nat64" in (pair.caller.nat, pair.callee.nat)
        check_ipv6_prerequisites(nat64=nat64, dns=pair.relay in ("v4-name", "dual-name"))
    tmp = tempfile.mkdtemp(prefix="parley-bench-")
    try:
        with Lab() as lab:
            server = lab.add_server(ipv6=pair.relay in ("dual", "dual-name"))
            relay, relay_addrs = start_relay(lab, server, relay_bin,
                                             os.path.join(tmp, "relay.seed"), pair.relay)
            caller, callee, routers, callee_ip = build(lab, pair)
            if rtt_ms:
                # The path between the peers only: the relay (another address) stays near.
                lab.delay_toward(caller[1], callee_ip, rtt_ms)
            rows, failures = [], []
            for i in range(calls):
                flush_all(lab, routers, v6)
                t0 = time.monotonic()
                try:
                    res = one_call(lab, relay, peer_bin, tmp, i, caller, callee, relay_addrs,
                                   rtt_ms)
                except (TimeoutError, AssertionError, RuntimeError) as e:
                    # A failed call is reported, not averaged in (the matrix test is where
                    # failures are judged).
                    print(f"  {label} #{i + 1}: FAILED: {str(e)[:2000]}", file=sys.stderr)
                    failures.append(str(e))
                    continue
                res["wall"] = time.monotonic() - t0
                rows.append(res)
                if verbose:
                    path = (f"direct over {res['family']} after {res['ttd']} ms (caller -> "
                            f"{res['remotes'][0]}, callee -> {res['remotes'][1]})"
                            if res["ttd"] is not None else
                            "relay (only one side switched)" if res["one_sided"] else "relay")
                    print(f"  {label} #{i + 1}: first frame {res['first']} ms "
                          f"({res['first_via']}), {path}, {res['wall']:.2f}s; relay "
                          f"connections {' / '.join(map(str, res['relays']))}",
                          file=sys.stderr)
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
    ap.add_argument("--pairs", default="default",
                    help=f"comma-separated, from: {', '.join(PAIRS)}; or a group: "
                         f"{', '.join(PAIR_GROUPS)} (default: {', '.join(DEFAULT_PAIRS)})")
    ap.add_argument("--rtt-ms", default="0",
                    help="comma-separated round-trip times added between the peers (IPv4 "
                         "pairs; the lab's delay line on the caller's uplink toward the "
                         "callee), each a row per pair, e.g. 0,150,300,600")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per call")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("direct_path_bench: needs root (network namespaces, nftables)")
    for path in (args.relay, args.peer):
        if not os.access(path, os.X_OK):
            sys.exit(f"direct_path_bench: {path} is not executable (build it, or pass "
                     f"--relay / --peer)")
    pairs = []
    for p in (p.strip() for p in args.pairs.split(",")):
        for q in PAIR_GROUPS.get(p, (p,) if p else ()):
            if q not in PAIRS:
                sys.exit(f"direct_path_bench: unknown pair {q!r}; known: {', '.join(PAIRS)} "
                         f"and the groups {', '.join(PAIR_GROUPS)}")
            if q not in pairs:
                pairs.append(q)

    print(f"{datetime.date.today()}, {machine_description()}; {args.calls} calls per pair, "
          f"50 fps each way, --budget-ms {BUDGET_MS}", file=sys.stderr)
    t_all = time.monotonic()
    table = []
    rtts = [int(v) for v in args.rtt_ms.split(",") if v.strip()]
    for label, rtt in ((p, r) for r in rtts for p in pairs):
        t0 = time.monotonic()
        t = {"pair": label + (f" @ {rtt} ms RTT" if rtt else ""), "expect": PAIRS[label].expect,
             "n": 0, "failed": 0,
             "first_med": None, "first_p90": None, "ttd_med": None, "ttd_p90": None,
             "ttd_max": None, "ttd_slow": 0, "direct": 0, "family": None, "skipped": None}
        try:
            rows, failures = run_pair(label, args.relay, args.peer, args.calls, args.verbose,
                                      rtt)
        except unittest.SkipTest as e:
            # The lab's own prerequisite check (tayga, unbound, kernel IPv6): say which.
            print(f"{t['pair']}: skipped: {e}", file=sys.stderr)
            t["skipped"] = str(e)
            table.append(t)
            continue
        t["failed"] = len(failures)
        if not rows:
            print(f"{t['pair']}: every call failed", file=sys.stderr)
            table.append(t)
            continue
        first = [r["first"] for r in rows]
        ttd = [r["ttd"] for r in rows if r["ttd"] is not None]
        fams = collections.Counter(r["family"] for r in rows if r["family"])
        t.update({
            "n": len(rows),
            "first_med": statistics.median(first), "first_p90": nearest_rank(first, 0.9),
            "ttd_med": statistics.median(ttd) if ttd else None,
            "ttd_p90": nearest_rank(ttd, 0.9) if ttd else None,
            "ttd_max": max(ttd) if ttd else None,
            "ttd_slow": sum(1 for v in ttd if v > 1000), "direct": len(ttd),
            # One family per pair is the normal case; a mix is shown with its counts.
            "family": ("relay" if not fams else next(iter(fams)) if len(fams) == 1 else
                       ", ".join(f"{f} {n}" for f, n in sorted(fams.items()))),
        })
        t["seconds"] = time.monotonic() - t0
        table.append(t)
        print(f"{t['pair']}: done in {t['seconds']:.1f}s", file=sys.stderr)

    def ms(v):
        return "relay" if v is None else f"{v:g}"

    def fm(v):
        return "-" if v is None else f"{v:g}"

    def calls(t):
        if t["skipped"]:
            return "skipped"
        return f"{t['n']}" + (f" ({t['failed']} failed)" if t["failed"] else "")

    def share(t):
        return "-" if not t["n"] else f"{t['direct']}/{t['n']}"

    def cells(t, unit=""):
        def u(v):
            return ms(v) + ("" if v is None else unit)
        return (t["pair"], t["expect"], t["family"] or "-", share(t), calls(t),
                fm(t["first_med"]) + (unit if t["first_med"] is not None else ""),
                fm(t["first_p90"]) + (unit if t["first_p90"] is not None else ""),
                u(t["ttd_med"]), u(t["ttd_p90"]), u(t["ttd_max"]),
                str(t["ttd_slow"]) if t["ttd_med"] is not None else "-")

    hdr = ("pair (caller/callee)", "expected", "path", "direct", "calls", "first frame p50",
           "first frame p90", "to direct p50", "to direct p90", "to direct max", "> 1 s")
    lines = [hdr] + [cells(t) for t in table]
    widths = [max(len(r[i]) for r in lines) for i in range(len(hdr))]
    print()
    for k, r in enumerate(lines):
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                        for i, c in enumerate(r)))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(f"(ms since the call became active; path: the family of the direct calls' pair, "
          f"or relay; direct: calls that went direct / calls; total "
          f"{time.monotonic() - t_all:.0f}s)")
    if args.markdown:
        print("\n| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
        for t in table:
            print("| " + " | ".join(cells(t, " ms")) + " |")


if __name__ == "__main__":
    main()
