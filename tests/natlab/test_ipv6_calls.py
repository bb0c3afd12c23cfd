"""Calls on the lab's IPv6 sites (issue 17, first cells): a relay on both families
(``--listen`` twice), parties on ``v6-firewall`` sites (global addresses, no NAT66, a stateful
address-and-port-dependent firewall) and on IPv4 port-restricted NATs.

Needs root, the variables of test_calls.py (PARLEY_RELAY, PARLEY_CALL_PEER) and the IPv6 lab
(tests/natlab/README.md "IPv6").  Each cell is a real call with numbered frames both ways;
the family, the path and the time to direct are printed, as the IPv4 matrix prints its cells.

* ``IPv6CallTest.test_v6_firewall_both_sides_goes_direct`` -- two v6-firewall hosts: ICE over
  IPv6 punches both firewalls (each side's checks open its pinhole for the other's address),
  the call goes direct over IPv6.
* ``IPv6CallTest.test_dual_stack_symmetric_v4_goes_direct_over_ipv6`` -- symmetric IPv4 NATs
  on both sides (IPv4 alone: relay) but global IPv6 on both: with ``--bind6`` (an IPv6 socket
  next to the IPv4 one) the call goes direct over IPv6.
* ``IPv6CallTest.test_v4_only_and_v6_only_meet_on_the_relay`` -- a port-restricted IPv4 host
  and a v6-firewall IPv6-only host, no NAT64: no common family, so the call stays on the
  dual-stack relay and completes there.
* ``IPv6CallTest.test_v6_party_reaches_the_relay_by_name`` -- the relay's name has an A and an
  AAAA record; the IPv6-only party resolves it and dials the AAAA one.
* ``IPv6CallTest.test_dual_stack_default_reaches_an_ipv4_only_peer_directly`` -- a dual-stack
  party with the default sockets whose relay connection went over IPv6 learns its IPv4 NAT
  mapping from the relay's IPv4 address (STUN) and goes direct with an IPv4-only peer.
* ``IPv6CallTest.test_v6_only_behind_nat64_calls_an_ipv4_host_through_an_ipv4_relay`` -- an
  IPv4-only relay known by an A record only; the IPv6-only party behind NAT64/DNS64 (tayga,
  unbound dns64) gets a synthesized AAAA, reaches the relay through NAT64 and calls an IPv4
  host behind a port-restricted NAT; the call goes direct through NAT64 (the IPv6-only side
  learned the prefix, RFC 7050, and pairs the peer's IPv4 candidates at their synthesized
  addresses).
* ``IPv6CallTest.test_v6_only_reaches_an_ipv4_literal_relay_through_nat64`` -- the relay as
  an IPv4 literal: the IPv6-only party synthesizes its address from the discovered prefix.

Run (as root): cd tests/natlab && PARLEY_RELAY=... PARLEY_CALL_PEER=... \\
    /usr/bin/python3 run.py test_ipv6_calls
"""

import time
import types
import unittest

from natlab import DNS_ZONE, check_ipv6_prerequisites, hostport
from test_calls import (ACTIVE_TIMEOUT, BUDGET_MS, HOST_PORT, MARGIN_S, CallEnv, Peer, Relay,
                        _fmt_stats)

PORT = 3478
FLOW_TIMEOUT = 5.0


def _out(text):
    print(text, flush=True)


class IPv6CallTest(unittest.TestCase):
    def setUp(self):
        check_ipv6_prerequisites()
        self.env = CallEnv(self, ipv6=True)
        server = self.env.server
        self.v4, self.v6 = hostport(server.ip, PORT), hostport(server.ip6, PORT)
        self.relay = Relay(self.env.lab, server, self.env.relay_bin, self.env.seed("relay"),
                           listen=self.v4, extra=("--listen", self.v6))
        self.peers = []

    def describe(self):
        return "\n" + "\n".join(p.describe() for p in self.peers) + "\n" + \
            self.env.lab.describe()

    def peer(self, node, tag, relay_addr, bind, **kw):
        relay = types.SimpleNamespace(addr=relay_addr, fp=self.relay.fp)
        p = Peer(self.env.lab, node, self.env.peer_bin, relay, self.env.seed(tag), name=tag,
                 bind=bind, **kw)
        self.peers.append(p)
        self.addCleanup(p.quit)
        return p

    def call(self, callee_node, callee_relay, callee_bind, caller_node, caller_relay,
             caller_bind, callee_extra=(), caller_extra=()):
        """Callee, then caller; both active. Returns (caller, callee)."""
        callee = self.peer(callee_node, "callee", callee_relay, callee_bind, extra=callee_extra)
        callee.wait_ready()
        caller = self.peer(caller_node, "caller", caller_relay, caller_bind, call=callee.fp,
                           extra=caller_extra)
        caller.wait_ready()
        caller.wait_event("active", ACTIVE_TIMEOUT)
        callee.wait_event("active", ACTIVE_TIMEOUT)
        return caller, callee

    def flowing(self, peers, key="unique", n=50):
        """Every peer received more than ``n`` frames (``key``) within FLOW_TIMEOUT; stats."""
        deadline = time.monotonic() + FLOW_TIMEOUT
        while True:
            st = [p.stats() for p in peers]
            if all(s[key] > n for s in st) or time.monotonic() >= deadline:
                return st
            time.sleep(0.05)  # pacing the queries; each answer is waited for

    def direct_over_ipv6(self, caller, callee, cell, what):
        """Both sides switch to direct, frames flow on it and the pair is IPv6; the stats."""
        for p in (caller, callee):
            try:
                p.wait_event("path", BUDGET_MS / 1000 + MARGIN_S,
                             pred=lambda e: e.get("to") == "direct")
            except TimeoutError:
                self.fail(f"{p.name}: no direct path over IPv6" + self.describe())
        st = self.flowing((caller, callee), key="via_direct")
        for name, s in zip(("caller", "callee"), st):
            _out(_fmt_stats(f"{what} {name}", s))
        _out(f"cell {cell}: IPv6, direct, time to direct "
             f"{max(s['time_to_direct_ms'] for s in st)} ms")
        for s in st:
            self.assertGreater(s["via_direct"], 50, "frames do not flow directly" + self.describe())
            self.assertIn("[2001:db8:", s["remote"], "the direct pair is not IPv6")
        return st

    def test_v6_firewall_both_sides_goes_direct(self):
        lab = self.env.lab
        a, b = lab.add_site("fa", "v6-firewall"), lab.add_site("fb", "v6-firewall")
        caller, callee = self.call(b.host, self.v6, hostport(b.host.ip6, HOST_PORT),
                                   a.host, self.v6, hostport(a.host.ip6, HOST_PORT))
        st = self.direct_over_ipv6(caller, callee, "v6fw x v6fw", "v6-firewall <-> v6-firewall")
        for s in st:
            self.assertEqual(s["missing"], 0)

    def test_dual_stack_symmetric_v4_goes_direct_over_ipv6(self):
        """Symmetric IPv4 NATs both sides (relay only on IPv4) but global IPv6 on both: with an
        IPv6 socket next to the IPv4 one (--bind6), the call goes direct over IPv6 while the
        relay connection stays on IPv4."""
        lab = self.env.lab
        a = lab.add_site("da", "dual-stack", v4nat="symmetric")
        b = lab.add_site("db", "dual-stack", v4nat="symmetric")

        def bind6(site):
            return ("--bind6", hostport(site.host.ip6, HOST_PORT))

        caller, callee = self.call(b.host, self.v4, f"{b.host.ip}:{HOST_PORT}",
                                   a.host, self.v4, f"{a.host.ip}:{HOST_PORT}",
                                   callee_extra=bind6(b), caller_extra=bind6(a))
        self.direct_over_ipv6(caller, callee, "ds-sym x ds-sym (IPv4 alone: relay)",
                              "dual-stack(sym v4) <-> dual-stack(sym v4)")

    def test_v4_only_and_v6_only_meet_on_the_relay(self):
        lab = self.env.lab
        v4 = lab.add_site("pa", "port-restricted")
        v6 = lab.add_site("fb", "v6-firewall")
        caller, callee = self.call(v6.host, self.v6, hostport(v6.host.ip6, HOST_PORT),
                                   v4.host, self.v4, f"{v4.host.ip}:{HOST_PORT}")
        st = self.flowing((caller, callee))
        for name, s in zip(("caller (IPv4)", "callee (IPv6)"), st):
            _out(_fmt_stats(f"v4 port-restricted <-> v6-firewall {name}", s))
        _out("cell prc(v4) x v6fw: relay (the relay is dual-stack)")
        for s in st:
            self.assertGreater(s["unique"], 50, "frames do not flow" + self.describe())
            self.assertEqual(s["path"], "relay")
            self.assertEqual(s["via_direct"], 0)
        self.assertEqual(caller.events("ended") + callee.events("ended"), [])

    def test_v6_party_reaches_the_relay_by_name(self):
        lab = self.env.lab
        server = self.env.server
        lab.add_dns({"relay": [server.ip, server.ip6]})
        v6 = lab.add_site("fa", "v6-firewall")
        v4 = lab.add_site("pb", "port-restricted")
        name = f"relay.{DNS_ZONE}:{PORT}"
        caller, callee = self.call(v4.host, name, f"{v4.host.ip}:{HOST_PORT}",
                                   v6.host, name, hostport(v6.host.ip6, HOST_PORT))
        st = self.flowing((caller, callee))
        for s in st:
            self.assertGreater(s["unique"], 50, "frames do not flow" + self.describe())
        _out(f"relay by name {name}: the IPv6-only party and the IPv4 party registered and "
             f"called through it ({st[0]['unique']} / {st[1]['unique']} frames)")

    def test_dual_stack_default_reaches_an_ipv4_only_peer_directly(self):
        """A dual-stack party with the library's default sockets and the relay by name (A and
        AAAA): its relay connection goes over IPv6 (Happy Eyeballs), yet an IPv4-only peer
        behind a port-restricted NAT needs its IPv4 NAT mapping -- which it learns from the
        relay's IPv4 address by STUN -- to go direct."""
        lab = self.env.lab
        server = self.env.server
        lab.add_dns({"relay": [server.ip, server.ip6]})
        ds = lab.add_site("da", "dual-stack")
        v4 = lab.add_site("pb", "port-restricted")
        name = f"relay.{DNS_ZONE}:{PORT}"
        callee = self.peer(ds.host, "callee", name, "default")
        ready = callee.wait_ready()
        self.assertTrue(ready["relay"].startswith("[2001:db8:"), ready["relay"])
        caller = self.peer(v4.host, "caller", name, f"{v4.host.ip}:{HOST_PORT}",
                           call=callee.fp)
        caller.wait_ready()
        for p in (caller, callee):
            p.wait_event("active", ACTIVE_TIMEOUT)
            try:
                p.wait_event("path", BUDGET_MS / 1000 + MARGIN_S,
                             pred=lambda e: e.get("to") == "direct")
            except TimeoutError:
                self.fail(f"{p.name}: no direct path over IPv4" + self.describe())
        st = self.flowing((caller, callee), key="via_direct")
        for who, s in zip(("caller (IPv4)", "callee (dual-stack, relay over IPv6)"), st):
            _out(_fmt_stats(f"v4 port-restricted <-> dual-stack default {who}", s))
            self.assertGreater(s["via_direct"], 50, "frames do not flow directly" + self.describe())
            self.assertNotIn("[", s["remote"], "the direct pair is not IPv4")
        _out(f"cell prc(v4) x ds(default sockets, relay over IPv6): IPv4, direct, time to "
             f"direct {max(s['time_to_direct_ms'] for s in st)} ms")

    def test_v6_only_behind_nat64_calls_an_ipv4_host_through_an_ipv4_relay(self):
        """The relay is IPv4-only here and known by an A record alone: the DNS64 of the
        IPv6-only site synthesizes its AAAA (64:ff9b::/96) and tayga carries the relay
        connection.  The IPv6-only party learns the NAT64 prefix (RFC 7050), pairs the IPv4
        host's candidates at their synthesized addresses and offers the mapping the relay saw
        (the NAT64 gateway's IPv4 address): the call goes direct through NAT64."""
        check_ipv6_prerequisites(nat64=True, dns=True)
        lab = self.env.lab
        server = self.env.server
        relay4 = Relay(lab, server, self.env.relay_bin, self.env.seed("relay4"),
                       listen=hostport(server.ips[1], PORT))
        self.relay = relay4
        lab.add_dns({"relay4": [server.ips[1]]})
        n64 = lab.add_site("na", "v6-only-nat64")
        v4 = lab.add_site("pb", "port-restricted")
        name = f"relay4.{DNS_ZONE}:{PORT}"
        caller, callee = self.call(v4.host, name, f"{v4.host.ip}:{HOST_PORT}",
                                   n64.host, name, hostport(n64.host.ip6, HOST_PORT))
        for p in (caller, callee):
            try:
                p.wait_event("path", BUDGET_MS / 1000 + MARGIN_S,
                             pred=lambda e: e.get("to") == "direct")
            except TimeoutError:
                self.fail(f"{p.name}: no direct path through NAT64" + self.describe())
        st = self.flowing((caller, callee), key="via_direct")
        for who, s in zip(("caller (IPv6-only, NAT64)", "callee (IPv4)"), st):
            _out(_fmt_stats(f"v6-only-nat64 <-> v4 port-restricted {who}", s))
            self.assertGreater(s["via_direct"], 50, "frames do not flow directly" + self.describe())
        self.assertIn("[64:ff9b::", st[0]["remote"], "the IPv6-only side's pair is not NAT64")
        _out(f"cell nat64(v6-only) x prc(v4): IPv6 -> NAT64 -> IPv4, direct, time to direct "
             f"{max(s['time_to_direct_ms'] for s in st)} ms (relay {name}, IPv4-only, reached "
             f"through DNS64 + NAT64)")

    def test_v6_only_reaches_an_ipv4_literal_relay_through_nat64(self):
        """The relay given as an IPv4 literal to an IPv6-only party: no DNS64 can help, the
        party synthesizes the address itself from the prefix it discovered."""
        check_ipv6_prerequisites(nat64=True, dns=True)
        lab = self.env.lab
        server = self.env.server
        literal = hostport(server.ips[1], PORT)
        self.relay = Relay(lab, server, self.env.relay_bin, self.env.seed("relay4"),
                           listen=literal)
        lab.add_dns({})
        n64 = lab.add_site("na", "v6-only-nat64")
        p = self.peer(n64.host, "v6only", literal, "default")
        ready = p.wait_ready()
        _out(f"IPv6-only party, relay {literal}: registered through {ready['relay']}")
        self.assertTrue(ready["relay"].startswith("[64:ff9b::"), ready["relay"])

if __name__ == "__main__":
    unittest.main()
