"""Self-check of the NAT lab: each router type behaves as the lab claims.

Independent of parley: the observations come from udp_probe.py, a stdlib "what is my
address" echo server/client.  The server namespace answers on 203.0.113.10 and .11, ports
3478 and 3479; a request ``DEST@FROM`` asks DEST to answer from FROM (a CHANGE-REQUEST in
miniature), which is how filtering is observed.  ``PortMappingTest`` checks the routers with a
real miniupnpd (``add_site(..., port_mapping=...)``) through pm_client.py's stdlib NAT-PMP, PCP
and UPnP IGD clients.

Run (as root):  cd tests/natlab && /usr/bin/python3 -m unittest -v test_lab_selfcheck
"""

import json
import os
import subprocess
import sys
import time
import unittest

from natlab import (ALT_PORT, HERE, IP, NFT, PORT_MAPPING_NATS, PRIMARY_PORT, PYTHON, SEQ_BASE,
                    SEQ_PORTS, Lab, LabError, check_port_mapping_prerequisites, cleanup_stale,
                    output_of, probe, server_endpoints, start_echo, wait_for_line)

S1, S2 = "203.0.113.10", "203.0.113.11"
P1, P2 = PRIMARY_PORT, ALT_PORT
HOST_PORT = 40000
NEG = 0.4   # seconds a request waits before "no answer" (all lab paths answer in ~1 ms)


def ep(ip, port):
    return f"{ip}:{port}"


class LabCase(unittest.TestCase):
    """A fresh lab per test: the server namespace runs the echo server on 4 endpoints."""

    def setUp(self):
        self.lab = Lab()
        self.addCleanup(self.lab.close)      # runs even if start()/setUp fails
        self.lab.start()
        self.server = self.lab.add_server()
        self.echo = start_echo(self.lab, self.server, server_endpoints(self.server),
                               tcp=[ep(S1, P1)])

    def ask(self, host, reqs, port=HOST_PORT, bind_ip=None):
        results = probe(self.lab, host, ep(bind_ip or host.ip, port), reqs, timeout=NEG)
        return [r["observed"] for r in results], results

    def assertAllEqual(self, values, expected, msg=None):
        self.assertEqual(values, [expected] * len(values), msg or self.lab.describe())


class NatBehaviourTest(LabCase):

    def test_none_observed_is_host_address(self):
        site = self.lab.add_site("open", "none")
        h = site.host
        self.assertEqual(h.ip, site.public_ip)
        obs, _ = self.ask(h, [ep(S1, P1), ep(S2, P1), ep(S1, P1) + "@" + ep(S2, P2)])
        # No NAT, no firewall: the server sees the host's own address, and an answer from
        # an address/port never contacted arrives too.
        self.assertAllEqual(obs, ep(h.ip, HOST_PORT))

    def test_full_cone_unsolicited_inbound_reaches_host(self):
        site = self.lab.add_site("fc", "full-cone")
        h, wan = site.host, site.public_ip
        self.assertEqual(site.public_port(), HOST_PORT)
        outsider = self.lab.add_public_host("outsider")          # 203.0.113.200
        # 1. Before the host ever sent anything: anyone reaching WAN:40000 reaches the host,
        #    and the host sees the sender's real address (DNAT only, no SNAT).
        echo = start_echo(self.lab, h, [ep(h.ip, HOST_PORT)])
        obs, _ = self.ask(self.server, [ep(wan, HOST_PORT)], port=5000, bind_ip=S2)
        self.assertEqual(obs, [ep(S2, 5000)])
        obs, _ = self.ask(outsider, [ep(wan, HOST_PORT)], port=5001)
        self.assertEqual(obs, [ep(outsider.ip, 5001)])
        self.lab.stop(echo)
        # 2. Outbound from the host port keeps the public port, towards every destination.
        obs, res = self.ask(h, [ep(S1, P1),
                                ep(S1, P1) + "@" + ep(S2, P2),   # unsolicited address+port
                                ep(S1, P1) + "@" + ep(S1, P2),   # unsolicited port
                                ep(S2, P1), ep(S1, P2), ep(S2, P2)])
        self.assertAllEqual(obs, ep(wan, HOST_PORT))
        self.assertEqual(res[1]["reply_src"], ep(S2, P2))
        self.assertEqual(res[2]["reply_src"], ep(S1, P2))

    def test_port_restricted_eim_and_apd_filtering(self):
        site = self.lab.add_site("pr", "port-restricted")
        h, wan = site.host, site.public_ip
        mapped = ep(wan, site.public_port())
        obs, _ = self.ask(h, [ep(S1, P1),
                              ep(S1, P1) + "@" + ep(S2, P2),   # other address and port
                              ep(S1, P1) + "@" + ep(S2, P1),   # other address, same port
                              ep(S1, P1) + "@" + ep(S1, P2),   # same address, other port
                              # now contact those endpoints directly: the mapping must be
                              # unchanged by the dropped packets (no conntrack clash)
                              ep(S2, P2), ep(S2, P1), ep(S1, P2)])
        self.assertEqual(obs, [mapped, None, None, None, mapped, mapped, mapped],
                         self.lab.describe())
        # Once the host has contacted S2:P2, S2:P2 may answer (filtering is per endpoint).
        obs, _ = self.ask(h, [ep(S1, P1) + "@" + ep(S2, P2)])
        self.assertEqual(obs, [mapped])

    def test_port_restricted_unpinned_masquerade_preserves_port(self):
        # Plain masquerade (pin=False) keeps the source port when it is free, and reuses the
        # mapping for further destinations: EIM in the single-host case.
        site = self.lab.add_site("pr", "port-restricted", pin=False)
        self.assertIsNone(site.public_port())
        obs, _ = self.ask(site.host, [ep(S1, P1), ep(S2, P1), ep(S2, P2),
                                      ep(S1, P1) + "@" + ep(S1, P2)])
        mapped = ep(site.public_ip, HOST_PORT)
        self.assertEqual(obs, [mapped, mapped, mapped, None])

    def test_symmetric_mapping_per_destination(self):
        site = self.lab.add_site("sym", "symmetric")
        h, wan = site.host, site.public_ip
        self.assertIsNone(site.public_port())
        obs, _ = self.ask(h, [ep(S1, P1),
                              ep(S1, P1) + "@" + ep(S2, P2),   # filtered like port-restricted
                              ep(S2, P1), ep(S1, P2), ep(S2, P2)])
        self.assertIsNone(obs[1])
        mapped = [obs[0]] + obs[2:]
        self.assertNotIn(None, mapped)
        self.assertEqual({m.split(":")[0] for m in mapped}, {wan})
        ports = [m.split(":")[1] for m in mapped]
        # A new port for a new address AND for a new port (address-and-port-dependent).  The
        # ports are random: allow one chance collision (p ~ 1e-4) so the check never flakes.
        self.assertGreaterEqual(len(set(ports)), 3, f"ports {ports} not distinct")
        # The same destination again keeps its (conntrack) mapping.
        again, _ = self.ask(h, [ep(S1, P1)])
        self.assertEqual(again, [obs[0]])

    def test_symmetric_seq_next_port_per_destination(self):
        site = self.lab.add_site("seq", "symmetric-seq")
        h, wan = site.host, site.public_ip
        self.assertIsNone(site.public_port())
        obs, _ = self.ask(h, [ep(S1, P1),
                              ep(S1, P1) + "@" + ep(S2, P2),   # filtered like port-restricted
                              ep(S2, P1), ep(S1, P2), ep(S2, P2)])
        self.assertIsNone(obs[1])
        mapped = [obs[0]] + obs[2:]
        self.assertNotIn(None, mapped)
        self.assertEqual({m.split(":")[0] for m in mapped}, {wan})
        ports = [int(m.split(":")[1]) for m in mapped]
        # Each new destination (address or port) the next port of the router's range: the
        # allocation a port predictor can follow.
        self.assertEqual(ports, list(range(ports[0], ports[0] + 4)), ports)
        self.assertTrue(SEQ_BASE <= ports[0] < SEQ_BASE + SEQ_PORTS, ports)
        again, _ = self.ask(h, [ep(S1, P1)])
        self.assertEqual(again, [obs[0]])

    def test_double_nat_observed_is_outer_wan(self):
        site = self.lab.add_site("dbl", "double")
        inner, outer = site.routers
        self.assertTrue(inner.wan_ip.startswith("100.64."))
        self.assertEqual(outer.wan_ip, site.public_ip)
        mapped = ep(outer.wan_ip, site.public_port())
        obs, _ = self.ask(site.host, [ep(S1, P1), ep(S1, P1) + "@" + ep(S2, P2),
                                      ep(S2, P1), ep(S2, P2)])
        self.assertEqual(obs, [mapped, None, mapped, mapped])

    def test_same_lan_hosts_share_wan_ip(self):
        site = self.lab.add_site("lan", "same-lan")
        a, b = site.hosts
        pa, pb = site.public_port(a), site.public_port(b)
        self.assertNotEqual(pa, pb)
        # Both hosts use the same local port; each keeps its own endpoint-independent mapping.
        obs_a, _ = self.ask(a, [ep(S1, P1), ep(S2, P1), ep(S1, P1) + "@" + ep(S2, P2)])
        obs_b, _ = self.ask(b, [ep(S1, P1), ep(S1, P1) + "@" + ep(S1, P2),
                                ep(S2, P1), ep(S2, P2), ep(S1, P2)])
        self.assertEqual(obs_a, [ep(site.public_ip, pa)] * 2 + [None])
        self.assertEqual(obs_b, [ep(site.public_ip, pb), None] + [ep(site.public_ip, pb)] * 3)
        # On the LAN they reach each other directly, without NAT.
        start_echo(self.lab, a, [ep(a.ip, 40002)])
        obs, _ = self.ask(b, [ep(a.ip, 40002)], port=40003)
        self.assertEqual(obs, [ep(b.ip, 40003)])

    def test_udp_blocked_to_peer(self):
        peer = self.lab.add_site("peer", "none").host
        site = self.lab.add_site("blk", "udp-blocked-to-peer", blocked_peers=[peer.ip])
        start_echo(self.lab, peer, [ep(peer.ip, HOST_PORT)])
        # Control: the peer's echo server is reachable from elsewhere.
        obs, _ = self.ask(self.server, [ep(peer.ip, HOST_PORT)], port=5000, bind_ip=S1)
        self.assertEqual(obs, [ep(S1, 5000)])
        mapped = ep(site.public_ip, site.public_port())
        obs, _ = self.ask(site.host, [ep(S1, P1), ep(peer.ip, HOST_PORT), ep(S2, P2)])
        self.assertEqual(obs, [mapped, None, mapped])
        # ... and the peer cannot reach the site's mapping either (the router drops it).
        obs, _ = self.ask(peer, [mapped])
        self.assertEqual(obs, [None])

    def test_udp_blocked_no_reply(self):
        site = self.lab.add_site("noudp", "udp-blocked")
        obs, _ = self.ask(site.host, [ep(S1, P1), ep(S2, P2), "tcp:" + ep(S1, P1)])
        # UDP gets nowhere; TCP (the control path) still goes through the NAT.
        self.assertEqual(obs[:2], [None, None])
        self.assertIsNotNone(obs[2], "TCP control request got no answer")
        self.assertEqual(obs[2].split(":")[0], site.public_ip)

    def test_lab_is_isolated(self):
        # No default route anywhere on the public side: off-lab destinations are unroutable,
        # and hosts behind NAT only reach their router, which has no route out either.
        site = self.lab.add_site("pr", "port-restricted")
        for node in (self.server, site.router):
            cp = self.lab.run(node, [IP, "route", "get", "192.0.2.1"], timeout=5)
            self.assertNotEqual(cp.returncode, 0, f"{node.name}: {cp.stdout}")
            self.assertIn("unreachable", cp.stderr.lower())
        cp = self.lab.run(self.lab.internet, [IP, "-o", "link"], timeout=5)
        links = sorted(line.split(":")[1].strip().split("@")[0] for line in cp.stdout.splitlines())
        self.assertEqual(links, ["lo", "p0", "p1", "pub"])


PM_CLIENT = os.path.join(HERE, "pm_client.py")
MAP_PORT = 45000        # the host's UDP port the port-mapping tests map (not a pinned port)
PM_NEG = 1.0            # seconds a port-mapping request waits before "no answer" (ms when it does)


_RTT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(3)
for dest in sys.argv[3:]:
    ip, port = dest.rsplit(":", 1)
    t0 = time.monotonic()
    s.sendto(b"natlab-probe 1", (ip, int(port)))
    data, _ = s.recvfrom(2048)
    print(round((time.monotonic() - t0) * 1000), data.decode().split()[-1])
"""


class DelayLineTest(LabCase):
    def test_delays_only_the_packets_toward_one_address_after_which_the_nat_applies(self):
        site = self.lab.add_site("d", "port-restricted")
        self.lab.delay_toward(site.host, self.server.ips[0], 200)
        cp = self.lab.run(site.host, [PYTHON, "-c", _RTT, site.host.ip, str(HOST_PORT),
                                      ep(self.server.ips[0], PRIMARY_PORT),
                                      ep(self.server.ips[1], PRIMARY_PORT)])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        (slow, seen_slow), (fast, seen_fast) = [ln.split() for ln in cp.stdout.splitlines()]
        self.assertGreaterEqual(int(slow), 200, cp.stdout)
        self.assertLess(int(slow), 400, cp.stdout)  # the line's delay, not a retransmission
        self.assertLess(int(fast), 100, cp.stdout)
        # The router's pinned mapping on both paths: the delayed packets are the host's own.
        self.assertEqual(seen_slow, ep(site.public_ip, HOST_PORT))
        self.assertEqual(seen_fast, seen_slow)


class PortMappingTest(unittest.TestCase):
    """``add_site(..., port_mapping=...)``: a real miniupnpd on the router, one protocol at a
    time, driven by pm_client.py's hand-written NAT-PMP / PCP / UPnP IGD clients."""

    def setUp(self):
        check_port_mapping_prerequisites()
        self.lab = Lab()
        self.addCleanup(self.lab.close)
        self.lab.start()

    def pm(self, site, proto, *args, timeout=3.0, host=None):
        """Run pm_client.py ``proto`` in the site's host; its JSON answer."""
        h = host or site.host
        argv = [PYTHON, PM_CLIENT, proto, "--timeout", str(timeout), *map(str, args)]
        if proto in ("natpmp", "pcp"):
            argv += ["--gateway", site.router.lan_ip]
        if proto in ("pcp", "upnp"):
            argv += ["--client-ip", h.ip]
        cp = self.lab.run(h, argv, timeout=timeout + 10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return json.loads(cp.stdout)

    def assertInbound(self, site, ext_port, peer, peer_port=6000, port=MAP_PORT, seen_as=None):
        """An unsolicited datagram from ``peer`` to the site's public_ip:ext_port reaches the
        host's ``port`` -- from the peer's own address, or ``seen_as`` (a peer behind a NAT)
        -- and the host's answer comes back from public_ip:ext_port."""
        h = site.host
        seen_as = seen_as or f"{peer.ip}:{peer_port}"
        echo = start_echo(self.lab, h, [f"{h.ip}:{port}"])
        res = probe(self.lab, peer, f"{peer.ip}:{peer_port}", [f"{site.public_ip}:{ext_port}"])
        wait_for_line(echo, rf"^recv {h.ip}:{port} <- {seen_as} natlab-probe", 5)
        self.lab.stop(echo)
        self.assertEqual(res[0]["observed"], seen_as, self.lab.describe())
        self.assertEqual(res[0]["reply_src"], f"{site.public_ip}:{ext_port}")

    def assertNoInbound(self, site, ext_port, peer, peer_port=6000, port=MAP_PORT):
        h = site.host
        echo = start_echo(self.lab, h, [f"{h.ip}:{port}"])
        res = probe(self.lab, peer, f"{peer.ip}:{peer_port}", [f"{site.public_ip}:{ext_port}"],
                    timeout=NEG)
        self.lab.stop(echo)
        self.assertIsNone(res[0]["observed"])
        self.assertNotIn(f"<- {peer.ip}:{peer_port}", output_of(echo)[0])

    def assertNoAnswer(self, site, *protos):
        for proto in protos:
            self.assertFalse(self.pm(site, proto, "--port", MAP_PORT, timeout=PM_NEG)["answered"],
                             f"{proto} answered on a site with port_mapping={site.port_mapping}")

    def dropped(self, site):
        """Packets the router's natlab_pm table dropped (the unwanted one of NAT-PMP/PCP)."""
        cp = self.lab.run(site.router, [NFT, "list", "table", "ip", "natlab_pm"], timeout=5)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return int(cp.stdout.split("counter packets ")[1].split()[0])

    def test_natpmp_only(self):
        site = self.lab.add_site("pm", "port-restricted", port_mapping=("natpmp",))
        outsider = self.lab.add_public_host("outsider")       # made after the site
        self.assertEqual(site.port_mapping, ("natpmp",))
        self.assertEqual(site.public_ip, "11.0.113.20")
        r = self.pm(site, "natpmp", "--port", MAP_PORT)
        self.assertTrue(r["answered"], r)
        self.assertEqual((r["result"], r["external_ip"], r["internal_port"]),
                         (0, site.public_ip, MAP_PORT), r)
        self.assertGreater(r["lifetime"], 0)
        ext = r["external_port"]
        self.assertEqual(self.lab.port_mappings(site), [
            {"proto": "udp", "external_port": ext, "internal": f"{site.host.ip}:{MAP_PORT}"}])
        self.assertInbound(site, ext, outsider)
        before = self.dropped(site)
        self.assertNoAnswer(site, "pcp", "upnp")
        self.assertGreater(self.dropped(site), before, "the PCP request was not dropped")

    def test_pcp_only(self):
        outsider = self.lab.add_public_host("outsider")       # made before the site
        site = self.lab.add_site("pm", "symmetric", port_mapping=["pcp"])
        self.assertEqual(site.port_mapping, ("pcp",))
        r = self.pm(site, "pcp", "--port", MAP_PORT)
        self.assertTrue(r["answered"], r)
        self.assertEqual((r["result"], r["external_ip"], r["internal_port"], r["proto"]),
                         (0, site.public_ip, MAP_PORT, 17), r)
        self.assertGreater(r["lifetime"], 0)
        ext = r["external_port"]
        self.assertEqual(self.lab.port_mappings(site), [
            {"proto": "udp", "external_port": ext, "internal": f"{site.host.ip}:{MAP_PORT}"}])
        self.assertInbound(site, ext, outsider)
        before = self.dropped(site)
        self.assertNoAnswer(site, "natpmp", "upnp")
        self.assertGreater(self.dropped(site), before, "the NAT-PMP request was not dropped")

    def test_upnp_only(self):
        site = self.lab.add_site("pm", "symmetric-seq", port_mapping="upnp")
        outsider = self.lab.add_public_host("outsider")
        self.assertEqual(site.port_mapping, ("upnp",))
        self.assertIsNotNone(site.upnp_port)
        r = self.pm(site, "upnp", "--port", MAP_PORT)
        self.assertTrue(r["answered"], r)
        self.assertEqual(r["location"],
                         f"http://{site.router.lan_ip}:{site.upnp_port}/rootDesc.xml")
        self.assertIn(":WANIPConnection:", r["service"])
        self.assertEqual((r["soap_status"], r["soap_error"], r["external_ip"]),
                         (200, None, site.public_ip), r)
        self.assertEqual(self.lab.port_mappings(site), [
            {"proto": "udp", "external_port": MAP_PORT,
             "internal": f"{site.host.ip}:{MAP_PORT}"}])
        self.assertInbound(site, MAP_PORT, outsider)
        self.assertNoAnswer(site, "natpmp", "pcp")
        # DeletePortMapping takes it away again.
        r = self.pm(site, "upnp", "--port", MAP_PORT, "--delete")
        self.assertEqual((r["soap_status"], r["soap_error"]), (200, None), r)
        self.assertEqual(self.lab.port_mappings(site), [])

    def test_natpmp_delete_removes_mapping(self):
        site = self.lab.add_site("pm", "symmetric", port_mapping=("natpmp", "pcp", "upnp"))
        outsider = self.lab.add_public_host("outsider")
        r = self.pm(site, "natpmp", "--port", MAP_PORT)
        self.assertEqual(r.get("result"), 0, r)
        ext = r["external_port"]
        self.assertEqual([m["external_port"] for m in self.lab.port_mappings(site)], [ext])
        self.assertInbound(site, ext, outsider)
        r = self.pm(site, "natpmp", "--port", MAP_PORT, "--lifetime", 0)
        self.assertEqual((r.get("result"), r.get("lifetime")), (0, 0), r)
        self.assertEqual(self.lab.port_mappings(site), [])
        self.assertNoInbound(site, ext, outsider, peer_port=6001)

    def test_routable_addresses(self):
        server = self.lab.add_server()
        start_echo(self.lab, server, server_endpoints(server))
        plain = self.lab.add_site("plain", "port-restricted")
        self.assertEqual(self.lab.next_site_public_ip(port_mapping=True), "11.0.113.30")
        site = self.lab.add_site("pm", "port-restricted", port_mapping=("natpmp",))
        later = self.lab.add_site("later", "none")
        self.assertEqual((plain.public_ip, site.public_ip, later.public_ip),
                         ("203.0.113.20", "11.0.113.30", "203.0.113.40"))
        self.assertIsNone(plain.port_mapping)
        self.assertEqual(site.router.wan_ip, site.public_ip)
        # On-link both ways; still no default route anywhere on the public side.
        for node in (server, plain.router, later.host):
            cp = self.lab.run(node, [IP, "route", "get", site.public_ip], timeout=5)
            self.assertEqual(cp.returncode, 0, f"{node.name}: {cp.stderr}")
            self.assertNotIn(" via ", cp.stdout, f"{node.name}: {cp.stdout}")
        cp = self.lab.run(site.router, [IP, "route", "get", S1], timeout=5)
        self.assertIn(f"src {site.public_ip}", cp.stdout)
        self.assertNotIn(" via ", cp.stdout)
        for node in (server, site.router):
            cp = self.lab.run(node, [IP, "route", "get", "192.0.2.1"], timeout=5)
            self.assertNotEqual(cp.returncode, 0, f"{node.name}: {cp.stdout}")
        # The pm site's host is seen from 11.0.113.x (pinned as usual) ...
        obs, _ = self.ask_from(site.host, [ep(S1, P1), ep(S2, P2)])
        self.assertEqual(obs, [ep(site.public_ip, site.public_port())] * 2)
        # ... and a host behind another router reaches its mapping, as does a 'none' host.
        r = self.pm(site, "natpmp", "--port", MAP_PORT)
        self.assertEqual(r.get("result"), 0, r)
        self.assertInbound(site, r["external_port"], plain.host,
                           seen_as=f"{plain.public_ip}:6000")
        self.assertInbound(site, r["external_port"], later.host)

    def ask_from(self, host, reqs, port=HOST_PORT):
        results = probe(self.lab, host, ep(host.ip, port), reqs, timeout=NEG)
        return [r["observed"] for r in results], results

    def test_outbound_source_port_after_mapping(self):
        """What the host's own packets from a mapped port look like: miniupnpd installs only a
        DNAT (and a forward accept) per mapping, no SNAT, so outbound flows get the router's
        ordinary NAT behaviour.  Prints one line per NAT type."""
        for nat in PORT_MAPPING_NATS:
            with self.subTest(nat=nat), Lab() as lab:
                self.lab = lab                     # what the helpers (pm, ask_from, ...) use
                server = lab.add_server()
                start_echo(lab, server, server_endpoints(server))
                outsider = lab.add_public_host("outsider")
                site = lab.add_site("pm", nat, port_mapping=("natpmp",))
                h = site.host
                r = self.pm(site, "natpmp", "--port", MAP_PORT)
                self.assertEqual(r.get("result"), 0, r)
                ext = r["external_port"]
                self.assertEqual(ext, MAP_PORT)           # the port asked for was free
                wan_e = f"{site.public_ip}:{ext}"
                # (b) the host sends first, from the mapped port, to new destinations.
                obs, _ = self.ask_from(h, [ep(S1, P1), ep(S2, P2)], port=MAP_PORT)
                out_ports = [int(o.split(":")[1]) for o in obs]
                self.assertEqual({o.split(":")[0] for o in obs}, {site.public_ip})
                # ... and to a peer, which then sends to WAN:E itself (both sides "punching").
                echo = start_echo(lab, outsider, [f"{outsider.ip}:6000"])
                obs, _ = self.ask_from(h, [f"{outsider.ip}:6000"], port=MAP_PORT)
                lab.stop(echo)
                first = int(obs[0].split(":")[1])
                echo = start_echo(lab, h, [f"{h.ip}:{MAP_PORT}"])
                res = probe(lab, outsider, f"{outsider.ip}:6000", [wan_e])
                lab.stop(echo)
                seen = res[0]["observed"]
                self.assertEqual(res[0]["reply_src"], wan_e)   # answers leave from E
                # (a) a fresh peer's unsolicited datagram to E reaches the host unchanged.
                self.assertInbound(site, ext, outsider, peer_port=6001)
                chain = lab.run(site.router, [NFT, "list", "chain", "inet", "miniupnpd",
                                              "postrouting_miniupnpd"], timeout=5).stdout
                self.assertNotIn("snat", chain)
                print(f"\n  port mapping on {nat}: mapped {h.ip}:{MAP_PORT} -> {wan_e}; host "
                      f"sends from {MAP_PORT} to new destinations -> public ports {out_ports}; "
                      f"to a peer first -> {first}; that peer then sending to E is seen by the "
                      f"host as {seen}", file=sys.stderr)
                if nat == "port-restricted":
                    # Plain masquerade keeps the port while it is free: E, as the mapping.
                    self.assertEqual(out_ports + [first], [ext] * 3)
                    self.assertEqual(seen, f"{outsider.ip}:6000")
                else:
                    if nat == "symmetric-seq":
                        self.assertEqual(out_ports, [out_ports[0], out_ports[0] + 1])
                        self.assertTrue(all(SEQ_BASE <= p < SEQ_BASE + SEQ_PORTS
                                            for p in out_ports + [first]), out_ports)
                    self.assertNotEqual(out_ports, [ext, ext])     # p ~ 2e-10 by chance
                    if first != ext:
                        # The inbound flow's reply tuple (host:P -> peer:6000) is taken by
                        # the host's own earlier flow, so conntrack rewrites the peer's
                        # source port: the host sees the peer at another port.
                        self.assertNotEqual(seen, f"{outsider.ip}:6000")
                        self.assertEqual(seen.split(":")[0], outsider.ip)

    def test_bad_port_mapping_arguments(self):
        for nat, kw in (("full-cone", {}), ("double", {}), ("none", {}), ("same-lan", {}),
                        ("port-restricted", {"ipv6": True}), ("dual-stack", {})):
            with self.assertRaises(ValueError, msg=nat):
                self.lab.add_site("x", nat, port_mapping=("natpmp",), **kw)
        with self.assertRaises(ValueError):
            self.lab.add_site("x", "symmetric", port_mapping=("natpmp", "igd"))
        self.assertEqual(self.lab.sites, {})
        # () is a routable address without a miniupnpd.
        site = self.lab.add_site("quiet", "symmetric", port_mapping=())
        self.assertEqual((site.port_mapping, site.miniupnpd, site.public_ip),
                         ((), None, "11.0.113.20"))
        # miniupnpd is stopped with the lab.
        with Lab() as lab:
            proc = lab.add_site("pm", "symmetric", port_mapping=("natpmp",)).miniupnpd
            self.assertIsNone(proc.poll())
        self.assertIsNotNone(proc.poll())


class HarnessTest(unittest.TestCase):
    """The harness itself: teardown, stale cleanup, deadlines."""

    def _netns(self):
        cp = subprocess.run([IP, "netns", "list"], capture_output=True, text=True)
        return {line.split()[0] for line in cp.stdout.splitlines() if line.strip()}

    def test_teardown_deletes_namespaces_and_processes(self):
        lab = Lab()
        try:
            lab.start()
            site = lab.add_site("t", "double")
            proc = lab.spawn(site.host, ["sleep", "60"])
            created = set(lab.namespaces())
            self.assertEqual(len(created), 4)       # inet, inner router, outer router, host
            self.assertTrue(created <= self._netns())
        finally:
            lab.close()
        self.assertIsNotNone(proc.poll())
        self.assertFalse(created & self._netns(), "namespaces left behind")
        self.assertEqual(lab.namespaces(), [])
        lab.close()                                  # idempotent

    def test_teardown_on_exception(self):
        names = set()
        with self.assertRaises(ZeroDivisionError):
            with Lab() as lab:
                lab.add_site("x", "symmetric")
                names = set(lab.namespaces())
                1 / 0
        self.assertTrue(names)
        self.assertFalse(names & self._netns())

    def test_cleanup_stale_removes_dead_runs_only(self):
        with open("/proc/sys/kernel/pid_max") as f:
            dead_pid = int(f.read()) + 1            # can never be a live pid
        stale = f"nl{dead_pid}x{os.getpid()}-stale"     # unique even under ctest -j
        try:
            with Lab() as lab:           # start() itself cleans up: create the stale one after
                mine = set(lab.namespaces())
                subprocess.run([IP, "netns", "add", stale], check=True)
                removed = cleanup_stale()
                # (a lab starting in parallel may have removed it first)
                self.assertNotIn(stale, self._netns())
                for ns in removed:
                    self.assertNotEqual(int(ns[2:].split("x")[0]), os.getpid())
                self.assertTrue(mine <= self._netns(), "a live lab's namespaces were removed")
        finally:
            subprocess.run([IP, "netns", "del", stale], capture_output=True)

    def test_wait_for_line_deadline_and_eof(self):
        with Lab() as lab:
            quiet = lab.spawn(lab.internet, ["sleep", "30"])
            t0 = time.monotonic()
            with self.assertRaises(TimeoutError):
                wait_for_line(quiet, r"never", 0.3)
            self.assertLess(time.monotonic() - t0, 2.0)
            chatty = lab.spawn(lab.internet, ["sh", "-c", "echo one; echo two; echo three"])
            self.assertEqual(wait_for_line(chatty, r"^t(\w+)$", 5).group(1), "wo")
            self.assertEqual(wait_for_line(chatty, r"^t(\w+)$", 5).group(1), "hree")
            with self.assertRaises(LabError):
                wait_for_line(chatty, r"^one$", 5)   # already consumed, then EOF

    def test_run_timeout_kills(self):
        with Lab() as lab:
            t0 = time.monotonic()
            with self.assertRaises(subprocess.TimeoutExpired):
                lab.run(lab.internet, ["sleep", "30"], timeout=0.3)
            self.assertLess(time.monotonic() - t0, 3.0)
            cp = subprocess.run([IP, "netns", "pids", lab.internet.ns], capture_output=True,
                                text=True, timeout=5)
            self.assertEqual(cp.stdout.split(), [], "the timed-out process survived")


if __name__ == "__main__":
    unittest.main()
