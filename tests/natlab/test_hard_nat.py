"""Calls that go direct through hard NATs: STUN servers next to the relay, and port
prediction through a symmetric NAT that allocates ports in sequence.

Needs what test_calls.py needs (root, PARLEY_RELAY, PARLEY_CALL_PEER) and coturn's turnserver
(scripts/setup-deps installs it). coturn runs in the server namespace at 203.0.113.11:3478 as
a plain STUN server: the third-party server a product would list in ``stun_servers``.

* ``StunServerTest`` -- coturn's answer is a candidate of its own and, behind a sequential
  symmetric NAT, what makes the NAT predictable: sequential symmetric <-> port-restricted goes
  direct with coturn configured (the port-restricted side's checks reach one of the predicted
  ports) and stays on the relay without it. A STUN server that never answers costs the call
  nothing.
* ``SequentialNatTest`` -- N calls in a row, sequential symmetric <-> port-restricted: every
  one direct; the median time to direct printed and bounded; the checks each side sent
  bounded by the prediction's budget.

Run (as root):
    cd tests/natlab && PARLEY_RELAY=... PARLEY_CALL_PEER=... /usr/bin/python3 run.py test_hard_nat
"""

import json
import os
import re
import statistics
import subprocess
import time
import unittest

from natlab import (IP, NFT, PYTHON, check_port_mapping_prerequisites, start_coturn,
                    wait_for_match)
from test_calls import BUDGET_MS, MARGIN_S, CallEnv, Peer, _fmt_stats

STUN = "203.0.113.11:3478"        # coturn
DEAD_STUN = "203.0.113.11:3999"   # nobody listens there
#: ICE's transmissions of one check (AgentConfig::check_rtx: 0, 100, 300, 700, 1500, 2300,
#: 3100 ms) and its pacing (one request per Ta = 20 ms over the whole agent, after a first
#: burst of AgentConfig::burst = 2 requests at once).
CHECK_SENDS = 7
MAX_CHECKS_PER_S = 50 + 1
#: Birthday probing (src/ice/birthday.h): the hard side's sockets, the easy side's probes per
#: attempt (5.1 s at 200 a second), and how long a call may take to go direct.
BIRTHDAY_PORTS = 256
BIRTHDAY_PROBES = 1024
BIRTHDAY_WAIT_S = 12
#: Calls in a row for the sequential-NAT rate (the bench runs more).
SEQ_CALLS = int(os.environ.get("PARLEY_HARD_NAT_CALLS", "3"))


class HardNatCase(unittest.TestCase):
    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay()
        self.coturn = start_coturn(self.env.lab, self.env.server, "203.0.113.11", 3478)

    def one_call(self, caller_site, callee_site, tag, stun=(STUN,), burn=None,
                 caller_extra=(), callee_extra=(), wait_s=BUDGET_MS / 1000 + MARGIN_S):
        """A call from ``caller_site``'s host to ``callee_site``'s; (path, (caller stats,
        callee stats), call). ``burn``: (site, n) -- once the callee has classified its NAT,
        another host of ``site`` opens n flows (the callee's NAT's allocator moves on)."""
        env, lab = self.env, self.env.lab
        extra = tuple(a for s in stun for a in ("--stun", s))
        c = env.call(caller_site.host, callee_site.host, tag)
        self.addCleanup(c.close)
        c.callee = Peer(lab, callee_site.host, env.peer_bin, env.relay,
                        env.seed(f"{tag}-callee"), name=f"{tag} callee",
                        extra=extra + tuple(callee_extra))
        c.callee.wait_ready()
        if burn and burn[1] > 0:
            site, n = burn
            wait_for_match(c.callee.proc, r"IPv4 NAT from \d+ mapping", 5, stream="stderr")
            self.open_flows(site.hosts[1], n)
        c.caller = Peer(lab, caller_site.host, env.peer_bin, env.relay,
                        env.seed(f"{tag}-caller"), name=f"{tag} caller", call=c.callee.fp,
                        extra=extra + tuple(caller_extra))
        c.caller.wait_ready()
        c.caller.wait_event("active", 10)
        c.callee.wait_event("active", 10)
        c.active_at = time.monotonic()
        met, st = c.poll_stats(lambda a, b: a["path"] == "direct" and b["path"] == "direct",
                               wait_s)
        return ("direct" if met else "relay"), st, c

    def open_flows(self, host, n):
        """``host`` sends one datagram to each of n new destinations (n new NAT mappings)."""
        code = ("import socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                f"for p in range(9000, 9000 + {n}): s.sendto(b'x', ('203.0.113.10', p))\n")
        self.assertEqual(self.env.lab.run(host, [PYTHON, "-c", code]).returncode, 0)


class StunServerTest(HardNatCase):
    def test_coturn_makes_a_sequential_symmetric_nat_predictable(self):
        seq = self.env.lab.add_site("seq", "symmetric-seq")
        prc = self.env.lab.add_site("prc", "port-restricted")
        path, st, c = self.one_call(seq, prc, "with")
        print(f"\nsequential symmetric -> port-restricted, coturn as STUN server: {path}\n"
              + _fmt_stats("caller", st[0]) + "\n" + _fmt_stats("callee", st[1]))
        self.assertEqual(path, "direct", c.describe())
        # The port-restricted side reached the symmetric side at a port no server saw: one
        # of the predicted ones, on the router's public address.
        remote = st[1]["remote"]
        self.assertIn(seq.public_ip + ":", remote, c.describe())
        self.assertIn("srflx", remote, c.describe())

    def test_without_a_stun_server_the_same_nat_stays_on_the_relay(self):
        # The control: the relay's one observation cannot tell how the NAT allocates.
        seq = self.env.lab.add_site("seq", "symmetric-seq")
        prc = self.env.lab.add_site("prc", "port-restricted")
        path, st, c = self.one_call(seq, prc, "without", stun=())
        print(f"\nsequential symmetric -> port-restricted, relay only: {path}")
        self.assertEqual(path, "relay", c.describe())

    def test_a_dead_stun_server_costs_nothing(self):
        a = self.env.lab.add_site("a", "port-restricted")
        b = self.env.lab.add_site("b", "port-restricted")
        path, st, c = self.one_call(a, b, "dead", stun=(DEAD_STUN, STUN))
        t = max(st[0]["time_to_direct_ms"], st[1]["time_to_direct_ms"])
        print(f"\nport-restricted <-> port-restricted with a dead STUN server: {path}, "
              f"time to direct {t} ms")
        self.assertEqual(path, "direct", c.describe())
        # What a call between these NATs takes without any STUN server (~330 ms in the
        # lab), with room for a loaded machine: not the dead server's 1 s probe deadline.
        self.assertLess(t, 1000, c.describe())


def count_to(lab, router, name, src, dst):
    """A counter on ``router`` of forwarded UDP from ``src`` to ``dst``; returns a reader."""
    lab.add_table(router, name,
                  "\tchain forward {\n"
                  "\t\ttype filter hook forward priority filter - 2; policy accept;\n"
                  f"\t\tip saddr {src} ip daddr {dst} meta l4proto udp counter\n"
                  "\t}\n")

    def read():
        out = subprocess.run([IP, "netns", "exec", lab.ns_of(router), NFT, "list", "table",
                              "ip", name], capture_output=True, text=True, check=True).stdout
        return int(re.search(r"counter packets (\d+)", out).group(1))
    return read


class ProbeBudgetTest(HardNatCase):
    def test_predictions_that_miss_cost_a_bounded_number_of_checks(self):
        # The sequential NAT's other host opens 40 flows between our observation and the
        # call: every predicted port is taken by then, the attempt fails, and what the
        # port-restricted side sent toward the symmetric side's address is what it costs.
        lab = self.env.lab
        seq = lab.add_site("seq", "symmetric-seq", hosts=2)
        prc = lab.add_site("prc", "port-restricted")
        read = count_to(lab, prc.router, "probes", prc.host.ip, seq.public_ip)
        env = self.env
        extra = ("--stun", STUN)
        c = env.call(prc.host, seq.hosts[0], "miss")
        self.addCleanup(c.close)
        c.callee = Peer(lab, seq.hosts[0], env.peer_bin, env.relay, env.seed("miss-callee"),
                        name="miss callee", extra=extra)
        c.callee.wait_ready()
        # Its mappings probe has run once its log classifies the NAT.
        wait_for_match(c.callee.proc, r"IPv4 NAT from 2 mapping\(s\): address-dependent "
                       r"mapping, sequential", 5, stream="stderr")
        self.open_flows(seq.hosts[1], 40)
        before = read()
        c.caller = Peer(lab, prc.host, env.peer_bin, env.relay, env.seed("miss-caller"),
                        name="miss caller", call=c.callee.fp, extra=extra)
        c.caller.wait_ready()
        c.caller.wait_event("active", 10)
        # One attempt (the budget, 3 s) and the first retry's start (2 s later): sampled
        # every 250 ms for the per-second rate.
        samples = [before]
        t_end = time.monotonic() + 4.5
        while time.monotonic() < t_end:
            time.sleep(0.25)   # sampling a counter, not waiting for an event
            samples.append(read())
        st = c.caller.stats()
        sent = samples[-1] - before
        per_s = max(samples[i + 4] - samples[i] for i in range(len(samples) - 4))
        print(f"\nmissed prediction: {st['path']}, {sent} datagrams toward the symmetric side "
              f"in 4.5 s, at most {per_s} in any second; ICE checks {st['ice_checks']} "
              f"(most in one attempt {st['ice_checks_max_attempt']}, attempts "
              f"{st['direct_attempts']})")
        self.assertEqual(st["path"], "relay", c.describe())
        # Every datagram toward that address was an ICE check the stats count, and no attempt
        # sent more than each of its candidates' transmissions: 12 predicted ports and the
        # two the servers saw.
        self.assertLessEqual(sent, st["ice_checks"], c.describe())
        self.assertLessEqual(st["ice_checks_max_attempt"], CHECK_SENDS * (12 + 2 + 1),
                             c.describe())
        self.assertLessEqual(per_s, MAX_CHECKS_PER_S, c.describe())


class PortMappingTest(HardNatCase):
    """A symmetric (random ports) side whose router runs miniupnpd answering one protocol;
    the side asks for a port with that protocol only. The mapping is its candidate, so the
    call goes direct with a symmetric peer as with a port-restricted one -- pairs that stay
    on the relay without it -- and the router holds no mapping once the context is gone."""

    def setUp(self):
        check_port_mapping_prerequisites()
        super().setUp()

    def check_protocol(self, proto):
        lab = self.env.lab
        results = []
        for other in ("symmetric", "port-restricted"):
            mapped = lab.add_site(f"m{len(results)}", "symmetric", port_mapping=(proto,))
            peer = lab.add_site(f"o{len(results)}", other)
            # The mapped side calls (its offer waits for the mapping) and answers in turn.
            caller, callee = (mapped, peer) if not results else (peer, mapped)
            pm = ("--port-mapping", proto)
            path, st, c = self.one_call(
                caller, callee, f"{proto}{len(results)}", stun=(),
                caller_extra=pm if caller is mapped else (),
                callee_extra=pm if callee is mapped else ())
            side = st[0] if caller is mapped else st[1]
            other_side = st[1] if caller is mapped else st[0]
            print(f"\n{proto}: symmetric+{proto} <-> {other}: {path}, time to direct "
                  f"{side['time_to_direct_ms']} ms, mapping {side['port_mapping']!r}, the peer "
                  f"reached {other_side['remote']!r}")
            self.assertEqual(path, "direct", c.describe())
            if proto != "upnp":
                # PCP and NAT-PMP answer within milliseconds: the mapping is offered (in the
                # offer, or trickled the moment it comes) long before a second passes. UPnP's
                # discovery alone waits 1 s.
                self.assertLess(side["time_to_direct_ms"], 1000, c.describe())
            self.assertTrue(side["port_mapping"].startswith(
                {"natpmp": "nat-pmp", "pcp": "pcp", "upnp": "upnp"}[proto] + " "), side)
            self.assertIn(mapped.public_ip, side["port_mapping"])
            held = lab.port_mappings(mapped)
            self.assertEqual(len(held), 1, held)
            # Gone with the context: the mapped side quits (destroys its context).
            (c.caller if caller is mapped else c.callee).quit()
            self.assertEqual(lab.port_mappings(mapped), [], "the mapping outlived its context")
            results.append(path)
            c.close()

    def test_nat_pmp(self):
        self.check_protocol("natpmp")

    def test_pcp(self):
        self.check_protocol("pcp")

    def test_upnp(self):
        self.check_protocol("upnp")


class SequentialNatTest(HardNatCase):
    def test_sequential_symmetric_to_port_restricted_calls_go_direct(self):
        times = []
        for i in range(SEQ_CALLS):
            seq = self.env.lab.add_site(f"s{i}", "symmetric-seq", hosts=2)
            prc = self.env.lab.add_site(f"p{i}", "port-restricted")
            # Either side may call; other hosts' flows move the allocator on between our
            # observation and the call by 0, 3, 6, ... ports (the prediction covers 12).
            caller, callee = (seq, prc) if i % 2 == 0 else (prc, seq)
            path, st, c = self.one_call(caller, callee, f"c{i}", burn=(seq, 3 * (i % 4)))
            self.assertEqual(path, "direct", f"call {i}\n" + c.describe())
            times.append(max(st[0]["time_to_direct_ms"], st[1]["time_to_direct_ms"]))
            c.close()
        med = statistics.median(times)
        print(f"\nsequential symmetric <-> port-restricted: {len(times)}/{SEQ_CALLS} direct, "
              f"time to direct median {med:.0f} ms, max {max(times)} ms ({times})")
        self.assertLessEqual(med, 2000)


class BirthdayTest(HardNatCase):
    """Random symmetric <-> port-restricted, coturn on both sides: the symmetric side opens
    256 sockets toward the port-restricted side's address, which probes random ports of the
    symmetric side's; one meets, and ICE and the pinned handshake go on through it."""

    def test_random_symmetric_to_port_restricted_calls_go_direct(self):
        times, probes = [], []
        for i in range(SEQ_CALLS):
            sym = self.env.lab.add_site(f"s{i}", "symmetric")
            prc = self.env.lab.add_site(f"p{i}", "port-restricted")
            caller, callee = (sym, prc) if i % 2 == 0 else (prc, sym)
            path, st, c = self.one_call(caller, callee, f"b{i}", wait_s=BIRTHDAY_WAIT_S)
            self.assertEqual(path, "direct", f"call {i}\n" + c.describe())
            hard, easy = (st[0], st[1]) if caller is sym else (st[1], st[0])
            self.assertEqual((hard["birthday_role"], easy["birthday_role"]), ("hard", "easy"))
            self.assertEqual(hard["birthday_hits"], 1, c.describe())
            self.assertLessEqual(easy["birthday_probes_max_attempt"], BIRTHDAY_PROBES)
            self.assertLessEqual(hard["birthday_sockets"], BIRTHDAY_PORTS)
            times.append(max(st[0]["time_to_direct_ms"], st[1]["time_to_direct_ms"]))
            probes.append(easy["birthday_probes"])
            c.close()
        med = statistics.median(times)
        print(f"\nrandom symmetric <-> port-restricted: {len(times)}/{SEQ_CALLS} direct, "
              f"time to direct median {med:.0f} ms, max {max(times)} ms ({times}); "
              f"probes of the easy side {probes}")
        self.assertLessEqual(med, 10000)


if __name__ == "__main__":
    unittest.main()
