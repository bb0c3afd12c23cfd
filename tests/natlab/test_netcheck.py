"""parley-netcheck against parley-stun-server, behind every NAT type of the lab.

Needs root and two environment variables (the tests skip, saying which, when unset):

    PARLEY_NETCHECK      path to parley-netcheck
    PARLEY_STUN_SERVER   path to parley-stun-server

Each test builds a fresh lab: the server namespace (203.0.113.10 and .11) runs
``parley-stun-server --listen 203.0.113.10:3478 --alt 203.0.113.11:3479``; a host behind the
NAT under test runs ``parley-netcheck --json --bind <host-ip>:40000 --stun 203.0.113.10:3478``
and its JSON report is checked against what the lab is known to do (test_lab_selfcheck.py
proves the lab's behaviour with an independent probe).

Run (as root):
    cd tests/natlab && PARLEY_NETCHECK=... PARLEY_STUN_SERVER=... \\
        /usr/bin/python3 -m unittest -v test_netcheck
One test:  /usr/bin/python3 -m unittest test_netcheck.NetcheckTest.test_symmetric
"""

import json
import os
import re
import time
import unittest

from natlab import Lab, wait_for_line

STUN = "203.0.113.10:3478"            # primary: NAT behaviour discovery
STUN_ALT = "203.0.113.11:3479"        # alternate address and port (CHANGE-REQUEST)
DEAD_STUN = "203.0.113.99:3478"       # nobody there
HOST_PORT = 40000
RUN_TIMEOUT = 30.0                    # hard limit for one netcheck run without --deadline

EIM = "endpoint-independent"
ADM = "address-dependent"
APD = "address-and-port-dependent"
BEHAVIOURS = (EIM, ADM, APD, "unknown")
CLASSIFICATIONS = ("open-internet", "firewalled", "full-cone", "restricted-cone",
                   "port-restricted-cone", "symmetric", "udp-blocked", "unknown")

# What the lab really does, per site type: (classification, mapping, filtering).
EXPECTED = {
    "none":                ("open-internet", EIM, EIM),
    "full-cone":           ("full-cone", EIM, EIM),
    "port-restricted":     ("port-restricted-cone", EIM, APD),
    "symmetric":           ("symmetric", APD, APD),
    "double":              ("port-restricted-cone", EIM, APD),
    "same-lan":            ("port-restricted-cone", EIM, APD),
    "udp-blocked-to-peer": ("port-restricted-cone", EIM, APD),
    "udp-blocked":         ("udp-blocked", "unknown", "unknown"),
}

# RFC 8445 candidate-attribute syntax, as parley-netcheck prints it.
CANDIDATE_RE = re.compile(
    r"^candidate:(?P<foundation>[A-Za-z0-9+/]{1,32}) 1 udp (?P<priority>\d+) "
    r"(?P<ip>\S+) (?P<port>\d+) typ (?P<typ>host|srflx|relay)"
    r"(?: raddr (?P<raddr>\S+) rport (?P<rport>\d+))?$")
ENDPOINT_RE = re.compile(r"^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$")


def _binary(var, name):
    path = os.environ.get(var)
    if not path:
        raise unittest.SkipTest(f"{var} is not set (it must name the {name} executable)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise unittest.SkipTest(f"{var}={path} is not an executable file")
    return path


def _port(endpoint):
    return int(endpoint.rsplit(":", 1)[1])


class NetcheckTest(unittest.TestCase):
    """One test per lab router type, plus a dead STUN server."""

    maxDiff = None

    def setUp(self):
        self.netcheck = _binary("PARLEY_NETCHECK", "parley-netcheck")
        self.stun_server = _binary("PARLEY_STUN_SERVER", "parley-stun-server")
        self.lab = Lab()
        self.addCleanup(self.lab.close)
        self.lab.start()
        self.server = self.lab.add_server()
        self.stun = self.lab.spawn(self.server, [self.stun_server, "--listen", STUN,
                                                 "--alt", STUN_ALT])
        wait_for_line(self.stun, r"^ready$", 10)

    # -- running and validating --------------------------------------------------------------

    def run_netcheck(self, host, stun=(STUN,), deadline_ms=None):
        """Run parley-netcheck in ``host``; return (report, elapsed seconds)."""
        argv = [self.netcheck, "--json", "--bind", f"{host.ip}:{HOST_PORT}"]
        for s in stun:
            argv += ["--stun", s]
        if deadline_ms is not None:
            argv += ["--deadline", str(deadline_ms)]
        timeout = RUN_TIMEOUT if deadline_ms is None else deadline_ms / 1000 + 5
        t0 = time.monotonic()
        cp = self.lab.run(host, argv, timeout=timeout)
        elapsed = time.monotonic() - t0
        ctx = (f"\n$ {' '.join(argv)}\n(in {host.ns}, {elapsed:.2f}s, exit {cp.returncode})\n"
               f"--- stdout ---\n{cp.stdout}\n--- stderr ---\n{cp.stderr}\n"
               f"{self.lab.describe()}")
        self.assertEqual(cp.returncode, 0, "parley-netcheck failed" + ctx)
        try:
            report = json.loads(cp.stdout)
        except ValueError as e:
            self.fail(f"stdout is not one JSON object ({e})" + ctx)
        self.assertIsInstance(report, dict, ctx)
        self.ctx = ctx
        self.check_schema(report, host, elapsed)
        self.assertIsNone(self.stun.poll(), "parley-stun-server exited" + ctx)
        return report, elapsed

    def check_schema(self, r, host, elapsed):
        ctx = self.ctx
        for key in ("udp", "local", "mapped", "nat", "mapping", "filtering", "port_preserved",
                    "hairpinning", "classification", "candidates", "gathering_ms"):
            self.assertIn(key, r, f"missing key {key!r}" + ctx)
        self.assertIsInstance(r["udp"], bool, ctx)
        self.assertEqual(r["local"], f"{host.ip}:{HOST_PORT}", ctx)
        if r["mapped"] is not None:
            self.assertRegex(r["mapped"], ENDPOINT_RE, ctx)
        for key in ("nat", "port_preserved", "hairpinning"):
            self.assertIn(r[key], (True, False, None), f"{key}" + ctx)
        self.assertIn(r["mapping"], BEHAVIOURS, ctx)
        self.assertIn(r["filtering"], BEHAVIOURS, ctx)
        self.assertIn(r["classification"], CLASSIFICATIONS, ctx)
        g = r["gathering_ms"]
        self.assertTrue(isinstance(g, (int, float)) and not isinstance(g, bool), ctx)
        self.assertGreaterEqual(g, 0, ctx)
        self.assertLessEqual(g, elapsed * 1000 + 50, "gathering_ms exceeds the run time" + ctx)
        self.assertIsInstance(r["candidates"], list, ctx)
        parsed = []
        for c in r["candidates"]:
            self.assertIsInstance(c, str, ctx)
            m = CANDIDATE_RE.match(c)
            self.assertIsNotNone(m, f"bad candidate {c!r}" + ctx)
            self.assertTrue(0 < int(m["priority"]) < 2 ** 32, f"priority of {c!r}" + ctx)
            self.assertTrue(0 < int(m["port"]) < 65536, ctx)
            parsed.append(m)
        keys = [(m["typ"], m["ip"], int(m["port"])) for m in parsed]
        self.assertEqual(len(keys), len(set(keys)), "duplicate candidates" + ctx)
        self.cands = parsed
        # Consistency between fields.
        if not r["udp"]:
            self.assertIsNone(r["mapped"], ctx)
        if r["mapped"] is not None and r["port_preserved"] is not None:
            self.assertEqual(r["port_preserved"], _port(r["mapped"]) == HOST_PORT,
                             "port_preserved disagrees with mapped" + ctx)
        if r["mapped"] is not None and r["nat"] is not None:
            self.assertEqual(r["nat"], r["mapped"] != r["local"], "nat vs mapped" + ctx)

    def of_type(self, typ):
        return [(m["ip"], int(m["port"])) for m in self.cands if m["typ"] == typ]

    def check_candidates(self, host, srflx):
        """Exactly one host candidate (host.ip:40000); srflx as given (list of (ip, port|None))."""
        ctx = self.ctx
        self.assertEqual(self.of_type("host"), [(host.ip, HOST_PORT)], ctx)
        got = self.of_type("srflx")
        self.assertEqual(len(got), len(srflx), f"srflx candidates {got}" + ctx)
        for (ip, port), (want_ip, want_port) in zip(sorted(got), sorted(srflx)):
            self.assertEqual(ip, want_ip, ctx)
            if want_port is not None:
                self.assertEqual(port, want_port, ctx)
        host_c = [m for m in self.cands if m["typ"] == "host"]
        for m in self.cands:
            if m["typ"] == "srflx":
                self.assertGreater(int(host_c[0]["priority"]), int(m["priority"]),
                                   "host candidates should outrank srflx (RFC 8445 5.1.2.2)"
                                   + ctx)
                self.assertNotEqual(m["foundation"], host_c[0]["foundation"], ctx)

    def check_site(self, site, host=None, *, srflx_port="pinned"):
        """Run netcheck on a NATed site's host and check everything the lab determines."""
        host = host or site.host
        r, _ = self.run_netcheck(host)
        classification, mapping, filtering = EXPECTED[site.nat]
        ctx = self.ctx
        self.assertIs(r["udp"], True, ctx)
        self.assertIs(r["nat"], True, ctx)
        self.assertEqual(r["classification"], classification, ctx)
        self.assertEqual(r["mapping"], mapping, ctx)
        self.assertEqual(r["filtering"], filtering, ctx)
        self.assertIn(r["hairpinning"], (False, None), "no lab router hairpins" + ctx)
        self.assertIsNotNone(r["mapped"], ctx)
        mapped_ip = r["mapped"].rsplit(":", 1)[0]
        self.assertEqual(mapped_ip, site.public_ip, ctx)
        want_port = site.public_port(host) if srflx_port == "pinned" else None
        if want_port is not None:
            self.assertEqual(r["mapped"], f"{site.public_ip}:{want_port}", ctx)
        self.check_candidates(host, [(site.public_ip, want_port)])
        self.assertIn((site.public_ip, _port(r["mapped"])), self.of_type("srflx"), ctx)
        return r

    # -- one test per router type ------------------------------------------------------------

    def test_none(self):
        site = self.lab.add_site("open", "none")
        h = site.host
        r, _ = self.run_netcheck(h)
        ctx = self.ctx
        classification, mapping, filtering = EXPECTED["none"]
        self.assertIs(r["udp"], True, ctx)
        self.assertIs(r["nat"], False, ctx)
        self.assertEqual(r["mapped"], f"{h.ip}:{HOST_PORT}", ctx)
        self.assertEqual(r["classification"], classification, ctx)
        self.assertEqual(r["mapping"], mapping, ctx)
        self.assertEqual(r["filtering"], filtering, ctx)
        self.assertIn(r["port_preserved"], (True, None), ctx)
        # srflx == host candidate: dropped as redundant.
        self.check_candidates(h, [])

    def test_full_cone(self):
        site = self.lab.add_site("fc", "full-cone")
        r = self.check_site(site)
        self.assertEqual(_port(r["mapped"]), HOST_PORT, "the DNAT'ed port" + self.ctx)
        self.assertIs(r["port_preserved"], True, self.ctx)

    def test_port_restricted(self):
        site = self.lab.add_site("pr", "port-restricted")
        self.check_site(site)

    def test_symmetric(self):
        site = self.lab.add_site("sym", "symmetric")
        self.check_site(site, srflx_port=None)

    def test_double(self):
        site = self.lab.add_site("dbl", "double")
        r = self.check_site(site)
        self.assertNotIn("100.64.", json.dumps(r), "the CGN address leaked" + self.ctx)

    def test_same_lan(self):
        site = self.lab.add_site("lan", "same-lan")
        a, b = site.hosts
        ra = self.check_site(site, a)
        rb = self.check_site(site, b)
        self.assertNotEqual(ra["mapped"], rb["mapped"], self.ctx)

    def test_udp_blocked_to_peer(self):
        peer = self.lab.add_site("peer", "none").host
        site = self.lab.add_site("blk", "udp-blocked-to-peer", blocked_peers=[peer.ip])
        self.check_site(site)

    def test_udp_blocked(self):
        site = self.lab.add_site("noudp", "udp-blocked")
        h = site.host
        deadline_ms = 2000
        r, elapsed = self.run_netcheck(h, deadline_ms=deadline_ms)
        ctx = self.ctx
        self.assertLess(elapsed, deadline_ms / 1000 + 1.0, "overran --deadline" + ctx)
        self.assertIs(r["udp"], False, ctx)
        self.assertEqual(r["classification"], "udp-blocked", ctx)
        self.assertIsNone(r["mapped"], ctx)
        self.assertIsNone(r["nat"], ctx)
        self.assertEqual((r["mapping"], r["filtering"]), ("unknown", "unknown"), ctx)
        self.assertIsNone(r["port_preserved"], ctx)
        self.assertIsNone(r["hairpinning"], ctx)
        self.check_candidates(h, [])

    def test_dead_stun_server(self):
        site = self.lab.add_site("pr", "port-restricted")
        h = site.host
        deadline_ms = 1500
        r, elapsed = self.run_netcheck(h, stun=(STUN, DEAD_STUN), deadline_ms=deadline_ms)
        ctx = self.ctx
        self.assertLess(elapsed, deadline_ms / 1000 + 1.0,
                        "a dead STUN server must not hold up the run past --deadline" + ctx)
        self.assertIs(r["udp"], True, ctx)
        self.assertEqual(r["mapped"], f"{site.public_ip}:{site.public_port()}", ctx)
        self.check_candidates(h, [(site.public_ip, site.public_port())])


if __name__ == "__main__":
    unittest.main()
