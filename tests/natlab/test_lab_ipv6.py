"""Self-check of the NAT lab's IPv6 parts: each new site type behaves as the lab claims.

Like test_lab_selfcheck, the observations come from udp_probe.py (a "what is my address" echo
server/client, ``[v6]:port`` for IPv6), plus the resolver of each namespace (``getent`` and
Python's ``socket.getaddrinfo`` run inside it).  The server answers on 203.0.113.10/.11 and
2001:db8:0:ff::10/::11, ports 3478 and 3479; ``DEST@FROM`` asks for the answer from FROM,
which is how filtering is observed.  NAT64 is a real tayga, DNS64 and the lab DNS real unbounds
(Debian packages ``tayga`` and ``unbound``): the tests skip without them.

Run (as root):  cd tests/natlab && /usr/bin/python3 run.py test_lab_ipv6
"""

import json
import os
import subprocess
import tempfile
import unittest

from natlab import (ALT_PORT, DNS_IP, DNS_IP6, ETC_NETNS, IP, NAT64_WKP, NFT, PRIMARY_PORT,
                    PYTHON, TMP_PREFIX, Lab, check_ipv6_prerequisites, cleanup_stale, hostport,
                    nat64_synth, probe, server_endpoints, server_endpoints6, start_echo)

S1, S2 = "203.0.113.10", "203.0.113.11"
S1_6, S2_6 = "2001:db8:0:ff::10", "2001:db8:0:ff::11"
P1, P2 = PRIMARY_PORT, ALT_PORT
HOST_PORT = 40000
NEG = 0.4   # seconds a request waits before "no answer" (all lab paths answer in ~1 ms)
ep = hostport

# getaddrinfo inside a namespace: every address Python's resolver returns for NAME (any
# family, no AI_ADDRCONFIG), or the error.
GAI = ("import json, socket, sys\n"
       "try:\n"
       "    r = socket.getaddrinfo(sys.argv[1], 3478, int(sys.argv[2]), socket.SOCK_DGRAM)\n"
       "    print(json.dumps(sorted({a[4][0] for a in r})))\n"
       "except socket.gaierror as e:\n"
       "    print(json.dumps(str(e)))\n")


class V6Case(unittest.TestCase):
    """A fresh lab per test: server with both families, echo server on its 8 endpoints."""

    NEED_NAT64 = False
    NEED_DNS = False

    def setUp(self):
        check_ipv6_prerequisites(nat64=self.NEED_NAT64, dns=self.NEED_DNS)
        self.lab = Lab()
        self.addCleanup(self.lab.close)      # runs even if start()/setUp fails
        self.lab.start()
        self.server = self.lab.add_server(ipv6=True)
        self.echo = start_echo(self.lab, self.server,
                               server_endpoints(self.server) + server_endpoints6(self.server))

    def ask(self, node, reqs, port=HOST_PORT, bind_ip=None):
        bind = bind_ip or node.ip6
        results = probe(self.lab, node, ep(bind, port), reqs, timeout=NEG)
        return [r["observed"] for r in results], results

    def gai(self, node, name, family=0):
        cp = self.lab.run(node, [PYTHON, "-c", GAI, name, str(family)], timeout=10)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return json.loads(cp.stdout)

    def getent(self, node, name):
        """Addresses of ``getent ahosts`` (AF_UNSPEC + AI_ADDRCONFIG), [] when it fails."""
        cp = self.lab.run(node, ["getent", "ahosts", name], timeout=10)
        return sorted({line.split()[0] for line in cp.stdout.splitlines() if line.strip()})

    def ctx(self):
        return "\n" + self.lab.describe()


class V6FirewallTest(V6Case):

    def test_outbound_keeps_own_address_apd_filtering(self):
        site = self.lab.add_site("fw", "v6-firewall")
        h = site.host
        self.assertEqual((site.nat, site.ipv4, site.ipv6), ("v6-firewall", False, True))
        self.assertEqual(site.prefix6, "2001:db8:1::/64")
        self.assertEqual((h.ips, h.ips6), ([], ["2001:db8:1::2"]))
        self.assertIn("ct state established,related accept", site.router.nft_rules6)
        self.assertNotIn("nat", site.router.nft_rules6.replace("natlab6", ""))   # no NAT66
        own = ep(h.ip6, HOST_PORT)
        obs, res = self.ask(h, [ep(S1_6, P1),
                                ep(S1_6, P1) + "@" + ep(S2_6, P2),   # other address and port
                                ep(S1_6, P1) + "@" + ep(S2_6, P1),   # other address, same port
                                ep(S1_6, P1) + "@" + ep(S1_6, P2),   # same address, other port
                                ep(S2_6, P2), ep(S2_6, P1), ep(S1_6, P2)])
        # No NAT: the server sees the host's own global address and port, towards every
        # destination; only answers on the exact 5-tuple the host opened come back.
        self.assertEqual(obs, [own, None, None, None, own, own, own], self.ctx())
        self.assertEqual(res[0]["reply_src"], ep(S1_6, P1))
        # Once the host has contacted S2:P2, S2:P2 may answer (filtering is per endpoint).
        obs, _ = self.ask(h, [ep(S1_6, P1) + "@" + ep(S2_6, P2)])
        self.assertEqual(obs, [own])
        # Control (a fresh host port, so no 5-tuple is open yet): without the firewall table
        # the same unsolicited answer arrives, so the drops were the firewall's, not routing's.
        req = [ep(S1_6, P1) + "@" + ep(S1_6, P2)]
        obs, _ = self.ask(h, req, port=40001)
        self.assertEqual(obs, [None])
        self.lab.run(site.router, [NFT, "delete", "table", "ip6", "natlab6"], check=True)
        obs, _ = self.ask(h, req, port=40001)
        self.assertEqual(obs, [ep(h.ip6, 40001)])

    def test_unsolicited_inbound_dropped_reply_passes(self):
        site = self.lab.add_site("fw", "v6-firewall")
        h = site.host
        outsider = self.lab.add_public_host("outsider", ipv6=True)   # .200 and ::200
        self.assertEqual(outsider.ips6, ["2001:db8:0:ff::200"])
        start_echo(self.lab, h, [ep(h.ip6, 40001)])
        start_echo(self.lab, outsider, [ep(outsider.ip6, 5000), ep(outsider.ip6, 5001)])
        # 1. Nobody on the internet reaches the host's open port unsolicited.
        obs, _ = self.ask(outsider, [ep(h.ip6, 40001)], port=6000)
        self.assertEqual(obs, [None], self.ctx())
        obs, _ = self.ask(self.server, [ep(h.ip6, 40001)], port=6001, bind_ip=S1_6)
        self.assertEqual(obs, [None])
        # 2. The host's own flow: the answer on the same 5-tuple passes, an answer from another
        #    port of the same address does not (address-and-port-dependent filtering).
        obs, _ = self.ask(h, [ep(outsider.ip6, 5000),
                              ep(outsider.ip6, 5000) + "@" + ep(outsider.ip6, 5001)], port=40002)
        self.assertEqual(obs, [ep(h.ip6, 40002), None])
        # 3. The same unsolicited request passes once the firewall is gone: it was the filter.
        self.lab.run(site.router, [NFT, "delete", "table", "ip6", "natlab6"], check=True)
        obs, _ = self.ask(outsider, [ep(h.ip6, 40001)], port=6000)
        self.assertEqual(obs, [ep(outsider.ip6, 6000)])

    def test_blocked_peers_and_block_udp(self):
        outsider6 = "2001:db8:0:ff::200"                 # the first add_public_host's twin
        site = self.lab.add_site("fw", "v6-firewall", blocked_peers=[outsider6])
        outsider = self.lab.add_public_host("outsider", ipv6=True)
        self.assertEqual(outsider.ip6, outsider6)
        start_echo(self.lab, outsider, [ep(outsider6, 5000)])
        own = ep(site.host.ip6, HOST_PORT)
        obs, _ = self.ask(site.host, [ep(outsider6, 5000), ep(S1_6, P1)])
        self.assertEqual(obs, [None, own], self.ctx())
        # block_udp on a running router with IPv6 addresses (an inet table), and back.
        table = self.lab.block_udp(site.router, [S2_6])
        obs, _ = self.ask(site.host, [ep(S2_6, P1), ep(S1_6, P2)])
        self.assertEqual(obs, [None, own])
        self.lab.remove_table(site.router, table)
        obs, _ = self.ask(site.host, [ep(S2_6, P1)])
        self.assertEqual(obs, [own])

    def test_no_route_off_lab(self):
        site = self.lab.add_site("fw", "v6-firewall")
        for node in (self.server, site.router):
            for dest in ("2001:db8:ffff::1", "2001:4860::1"):
                cp = self.lab.run(node, [IP, "-6", "route", "get", dest], timeout=5)
                self.assertNotEqual(cp.returncode, 0, f"{node.name}: {cp.stdout}")
                self.assertIn("unreachable", cp.stderr.lower())
        obs, _ = self.ask(site.host, ["[2001:db8:ffff::1]:3478"])
        self.assertEqual(obs, [None])
        # Still one bridge with one port per public node, and no link out of the lab.
        cp = self.lab.run(self.lab.internet, [IP, "-o", "link"], timeout=5)
        links = sorted(line.split(":")[1].strip().split("@")[0] for line in cp.stdout.splitlines())
        self.assertEqual(links, ["lo", "p0", "p1", "pub"])


class DualStackTest(V6Case):

    def test_port_restricted_both_families(self):
        site = self.lab.add_site("ds", "dual-stack")
        h = site.host
        self.assertEqual((site.nat, site.v4nat, site.ipv4, site.ipv6),
                         ("dual-stack", "port-restricted", True, True))
        self.assertEqual((h.ip, h.ip6), ("10.0.1.2", "2001:db8:1::2"))
        mapped = ep(site.public_ip, site.public_port())
        obs4, _ = self.ask(h, [ep(S1, P1), ep(S1, P1) + "@" + ep(S2, P2),
                               ep(S1, P1) + "@" + ep(S1, P2), ep(S2, P2)], bind_ip=h.ip)
        self.assertEqual(obs4, [mapped, None, None, mapped], self.ctx())
        own = ep(h.ip6, HOST_PORT)
        obs6, _ = self.ask(h, [ep(S1_6, P1), ep(S1_6, P1) + "@" + ep(S2_6, P2),
                               ep(S1_6, P1) + "@" + ep(S1_6, P2), ep(S2_6, P2)])
        self.assertEqual(obs6, [own, None, None, own], self.ctx())

    def test_symmetric_v4_and_unnated_v6(self):
        site = self.lab.add_site("ds", "dual-stack", v4nat="symmetric")
        h = site.host
        self.assertIsNone(site.public_port())
        obs4, _ = self.ask(h, [ep(S1, P1), ep(S1, P1) + "@" + ep(S2, P2),
                               ep(S2, P1), ep(S1, P2), ep(S2, P2)], bind_ip=h.ip)
        self.assertIsNone(obs4[1])
        mapped = [obs4[0]] + obs4[2:]
        self.assertNotIn(None, mapped)
        self.assertEqual({m.split(":")[0] for m in mapped}, {site.public_ip})
        ports = [m.split(":")[1] for m in mapped]
        # New port per destination (random: allow one chance collision, as the v4 self-check).
        self.assertGreaterEqual(len(set(ports)), 3, f"ports {ports} not distinct")
        # IPv6 through the same router: no NAT at all, the same address and port everywhere.
        obs6, _ = self.ask(h, [ep(S1_6, P1) + "@" + ep(S2_6, P1),    # filtered (APD)
                               ep(S1_6, P1), ep(S2_6, P1), ep(S1_6, P2), ep(S2_6, P2)])
        self.assertEqual(obs6, [None] + [ep(h.ip6, HOST_PORT)] * 4, self.ctx())

    def test_ipv6_flag_equals_dual_stack_and_v4_sites_stay_v4(self):
        v4 = self.lab.add_site("v4", "port-restricted")
        ds = self.lab.add_site("pr6", "port-restricted", ipv6=True)
        self.assertEqual((ds.nat, ds.v4nat, ds.ipv6), ("port-restricted", "port-restricted", True))
        self.assertEqual(ds.host.ip6, "2001:db8:2::2")
        obs, _ = self.ask(ds.host, [ep(S1_6, P1)])
        self.assertEqual(obs, [ep(ds.host.ip6, HOST_PORT)])
        # The plain IPv4 site next to it is unchanged: IPv6 disabled, no v6 rules, no DNS.
        for node in (v4.host, v4.router):
            cp = self.lab.run(node, ["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"])
            self.assertEqual(cp.stdout.strip(), "1", node.name)
            self.assertEqual((node.ips6, node.nft_rules6, node.resolvers), ([], None, []))
            self.assertFalse(os.path.exists(os.path.join(ETC_NETNS, node.ns)))
        self.assertIsNone(v4.prefix6)
        self.assertFalse(v4.ipv6)


class Nat64Test(V6Case):

    NEED_NAT64 = True
    NEED_DNS = True

    def test_v6_only_host_reaches_ipv4_through_tayga(self):
        self.lab.add_dns({"relay4": [S1], "relay": [S1, S1_6]})
        site = self.lab.add_site("m", "v6-only-nat64")
        h, r = site.host, site.router
        self.assertEqual((site.nat64_prefix, site.dns64), (NAT64_WKP, "2001:db8:1::1"))
        self.assertEqual(self.lab.resolvers(h), ["2001:db8:1::1"])
        # No IPv4 at all on the host: no address but loopback, no route.
        cp = self.lab.run(h, [IP, "-4", "route", "show", "table", "all"], check=True)
        self.assertEqual([ln for ln in cp.stdout.splitlines() if " lo " not in ln
                          and not ln.startswith(("local ", "broadcast "))], [], cp.stdout)
        cp = self.lab.run(h, [IP, "-4", "-o", "addr"], check=True)
        self.assertEqual([ln.split()[1] for ln in cp.stdout.splitlines()], ["lo"])
        cp = self.lab.run(h, [IP, "route", "get", S1])
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("unreachable", cp.stderr.lower())
        # DNS64: the A-only name gets a synthesized AAAA in 64:ff9b::/96.
        synth = nat64_synth(S1)
        self.assertEqual(synth, "64:ff9b::cb00:710a")
        self.assertEqual(self.getent(h, "relay4.natlab.test"), [synth], self.ctx())
        self.assertIn(synth, self.gai(h, "relay4.natlab.test"))
        self.assertEqual(self.gai(h, "relay4.natlab.test", 10), [synth])      # AF_INET6
        # A name with a real AAAA keeps it (no synthesis).
        self.assertEqual(self.getent(h, "relay.natlab.test"), [S1_6])
        # RFC 7050 prefix discovery works through the DNS64.
        self.assertEqual(self.gai(h, "ipv4only.arpa", 10),
                         [nat64_synth("192.0.0.170"), nat64_synth("192.0.0.171")])
        # UDP to the synthesized address reaches the IPv4 server, which sees the NAT64's IPv4
        # address (the router's public address, host port pinned) as the source.
        nat64_src = ep(site.public_ip, site.public_port())
        self.assertEqual(nat64_src, "203.0.113.20:40000")
        obs, res = self.ask(h, [ep(synth, P1), ep(nat64_synth(S2), P2),
                                ep(synth, P1) + "@" + ep(S1, P2),   # APD filter on the v4 side
                                ep(S1_6, P1)])                       # native IPv6 alongside
        self.assertEqual(obs, [nat64_src, nat64_src, None, ep(h.ip6, HOST_PORT)], self.ctx())
        self.assertEqual(res[0]["reply_src"], ep(synth, P1))
        # It went through tayga: the router's IPv4 conntrack holds the flow from tayga's
        # address for this host (192.168.255.2), SNATed to the public address.
        ct = self.lab.conntrack(r)
        if ct:
            self.assertRegex(ct, r"src=192\.168\.255\.2 dst=203\.0\.113\.10 sport=40000 "
                             r"dport=3478 .*src=203\.0\.113\.10 dst=203\.0\.113\.20 "
                             r"sport=3478 dport=40000", ct)
        cp = self.lab.run(r, [IP, "-o", "link", "show", "nat64"], check=True)
        self.assertIn("nat64", cp.stdout)

    def test_network_specific_prefix_and_dns_set(self):
        self.lab.add_dns({"relay4": [S1]})
        site = self.lab.add_site("m", "v6-only-nat64", nat64_prefix="2001:db8:64::/96")
        h = site.host
        synth = nat64_synth(S1, site.nat64_prefix)
        self.assertEqual(synth, "2001:db8:64::cb00:710a")
        self.assertEqual(self.getent(h, "relay4.natlab.test"), [synth])
        obs, _ = self.ask(h, [ep(synth, P1)])
        self.assertEqual(obs, [ep(site.public_ip, site.public_port())], self.ctx())
        # dns_set changes the record and flushes the DNS64: the next lookup sees it at once.
        self.lab.dns_set("relay4", [S2])
        self.assertEqual(self.getent(h, "relay4.natlab.test"),
                         [nat64_synth(S2, site.nat64_prefix)])
        self.lab.dns_set("relay4", [])
        self.assertEqual(self.getent(h, "relay4.natlab.test"), [])


class LabDnsTest(V6Case):

    NEED_NAT64 = True
    NEED_DNS = True

    def test_lab_name_resolves_on_every_host(self):
        dns = self.lab.add_dns({"relay": [S1, S1_6], "relay4": [S1]})
        self.assertEqual((dns.ips, dns.ips6), ([DNS_IP], [DNS_IP6]))
        sites = {s.name: s for s in (
            self.lab.add_site("pr", "port-restricted"),
            self.lab.add_site("open", "none"),
            self.lab.add_site("fw", "v6-firewall"),
            self.lab.add_site("ds", "dual-stack", v4nat="symmetric"),
            self.lab.add_site("m", "v6-only-nat64"))}
        later = self.lab.add_public_host("later", ipv6=True)    # created after add_dns
        nodes = [n for n in self.lab.nodes.values() if n.role != "internet"]
        self.assertIn(later, nodes)
        nat64_hosts = set(h.name for h in sites["m"].hosts)
        for n in nodes:
            want = ([sites["m"].dns64] if n.name in nat64_hosts else
                    ([DNS_IP] if n.ips else []) + ([DNS_IP6] if n.ips6 else []))
            self.assertEqual(self.lab.resolvers(n), want, n.name)
            with open(os.path.join(ETC_NETNS, n.ns, "resolv.conf")) as f:
                self.assertIn(f"nameserver {want[0]}\n", f.read())
            # Every family the node has gets the name's address of that family
            # (getent ahosts uses AI_ADDRCONFIG) ...
            fams = ([S1] if n.ips else []) + ([S1_6] if n.ips6 else [])
            self.assertEqual(self.getent(n, "relay.natlab.test"), sorted(fams),
                             f"{n.name}{self.ctx()}")
            # ... and the resolver itself returns both records everywhere.
            self.assertEqual(self.gai(n, "relay.natlab.test"), sorted([S1, S1_6]), n.name)
            r4 = self.gai(n, "relay4.natlab.test")
            if n.name in nat64_hosts:
                self.assertEqual(r4, sorted([S1, nat64_synth(S1)]), n.name)
            else:
                self.assertEqual(r4, [S1], n.name)
        # No DNS64 elsewhere: the IPv6-only firewall host gets no IPv6 address for relay4.
        r = self.gai(sites["fw"].host, "relay4.natlab.test", 10)      # AF_INET6
        self.assertIsInstance(r, str, f"expected a resolver error, got {r}")


class BlackholeTest(V6Case):

    def test_blackhole_one_family_of_the_server(self):
        site = self.lab.add_site("ds", "dual-stack")
        h = site.host
        mapped = ep(site.public_ip, site.public_port())
        own = ep(h.ip6, HOST_PORT)
        name = self.lab.blackhole(self.server, 6)
        self.assertEqual(self.lab.blackholes[name], [S1_6, S2_6])
        self.assertIn("blackhole", self.lab.describe())
        obs6, _ = self.ask(h, [ep(S1_6, P1), ep(S2_6, P2)])
        obs4, _ = self.ask(h, [ep(S1, P1), ep(S2, P2)], bind_ip=h.ip)
        self.assertEqual((obs6, obs4), ([None, None], [mapped, mapped]), self.ctx())
        self.lab.unblackhole(name)
        obs6, _ = self.ask(h, [ep(S1_6, P1)])
        self.assertEqual(obs6, [own])
        # One address of one family: 203.0.113.10 vanishes, .11 and IPv6 stay.
        name = self.lab.blackhole(S1)
        obs4, _ = self.ask(h, [ep(S1, P1), ep(S2, P1)], bind_ip=h.ip)
        obs6, _ = self.ask(h, [ep(S1_6, P1)])
        self.assertEqual((obs4, obs6), ([None, mapped], [own]))
        self.lab.unblackhole(name)
        self.assertEqual(self.lab.blackholes, {})


class V6HarnessTest(unittest.TestCase):
    """Teardown of everything the IPv6 parts add: daemons, tun, /etc/netns, temp files."""

    def _netns(self):
        cp = subprocess.run([IP, "netns", "list"], capture_output=True, text=True)
        return {line.split()[0] for line in cp.stdout.splitlines() if line.strip()}

    def test_teardown_removes_daemons_and_files(self):
        check_ipv6_prerequisites(nat64=True, dns=True)
        lab = Lab()
        try:
            lab.start()
            lab.add_dns({"relay": [S1]})
            site = lab.add_site("m", "v6-only-nat64")
            procs = list(lab._procs)              # dns unbound, tayga, dns64 unbound
            self.assertEqual(len(procs), 3)
            created = set(lab.namespaces())
            etc = [os.path.join(ETC_NETNS, n.ns) for n in (lab.dns, site.router, site.host)]
            for d in etc:
                self.assertTrue(os.path.isfile(os.path.join(d, "resolv.conf")), d)
            tmp = lab._tmpdir
            self.assertTrue(os.path.isdir(tmp))
        finally:
            lab.close()
        for p in procs:
            self.assertIsNotNone(p.poll(), p.args)
        self.assertFalse(created & self._netns(), "namespaces left behind")
        for d in etc:
            self.assertFalse(os.path.exists(d), d)
        self.assertFalse(os.path.exists(tmp), tmp)
        lab.close()                                  # idempotent

    def test_cleanup_stale_removes_dead_runs_files(self):
        check_ipv6_prerequisites()
        with open("/proc/sys/kernel/pid_max") as f:
            dead_pid = int(f.read()) + 1            # can never be a live pid
        name = f"nl{dead_pid}x{os.getpid()}-stale"
        etc = os.path.join(ETC_NETNS, name)
        tmp = os.path.join(tempfile.gettempdir(), TMP_PREFIX + name)
        mine = os.path.join(ETC_NETNS, f"nl{os.getpid()}x999-mine")
        try:
            for d in (etc, tmp, mine):
                os.makedirs(d)
                with open(os.path.join(d, "resolv.conf"), "w") as f:
                    f.write("nameserver 203.0.113.5\n")
            cleanup_stale()
            self.assertFalse(os.path.exists(etc))
            self.assertFalse(os.path.exists(tmp))
            self.assertTrue(os.path.exists(mine), "a live run's files were removed")
        finally:
            for d in (etc, tmp, mine):
                subprocess.run(["rm", "-rf", "--", d])


if __name__ == "__main__":
    unittest.main()
