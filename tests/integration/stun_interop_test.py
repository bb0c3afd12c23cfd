#!/usr/bin/env python3
"""STUN interop with software nobody here wrote: Debian's coturn.

- parley's STUN client (parley-netcheck) against coturn's turnserver, which supports RFC 5780
  when it listens on two IPs: the reflexive address must be exactly the socket's address
  (loopback has no NAT), and the behaviour discovery must work against coturn's server.
- coturn's clients (turnutils_stunclient, turnutils_natdiscovery) against parley's responder
  (parley-stun-server).

Usage: stun_interop_test.py BUILD_DIR   (stdlib unittest; servers bind 127.0.0.1/127.0.0.2)
"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

BUILD = None


def free_udp_port(ip="127.0.0.1"):
    """A port free on both 127.0.0.1 and 127.0.0.2 and its successor (for --alt)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((ip, 0))
        port = s.getsockname()[1]
        s.close()
        if port >= 65000:
            continue
        ok = True
        for host in ("127.0.0.1", "127.0.0.2"):
            for p in (port, port + 1):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    t.bind((host, p))
                except OSError:
                    ok = False
                finally:
                    t.close()
        if ok:
            return port
    raise RuntimeError("no free UDP port pair")


def stun_answers(ip, port, timeout=0.1):
    """True if a Binding request to ip:port gets a Binding success response."""
    txid = os.urandom(12)
    req = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(req, (ip, port))
        data, _ = s.recvfrom(2048)
        return len(data) >= 20 and data[0:2] == b"\x01\x01" and data[8:20] == txid
    except OSError:
        return False
    finally:
        s.close()


def wait_until_serving(ip, port, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if stun_answers(ip, port):
            return
    raise AssertionError(f"no STUN server answered on {ip}:{port} within {deadline_s}s")


class Server:
    def __init__(self, argv, log):
        self.log = open(log, "w+")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        out = self.log.read()
        self.log.close()
        return out


class ParleyClientAgainstCoturn(unittest.TestCase):
    def setUp(self):
        if shutil.which("turnserver") is None:
            self.fail("coturn's turnserver is not installed (scripts/setup-deps installs it)")
        self.port = free_udp_port()
        self.server = Server(
            ["turnserver", "-n", "--no-tls", "--no-dtls", "--stun-only", "--no-cli",
             "--no-auth", "-r", "parley.test", "-L", "127.0.0.1", "-L", "127.0.0.2",
             "-p", str(self.port), "--alt-listening-port", str(self.port + 1),
             "--log-file", "stdout", "--simple-log", "--pidfile", "/dev/null"],
            os.path.join(BUILD, "coturn-interop.log"))
        self.addCleanup(self.server.stop)
        wait_until_serving("127.0.0.1", self.port)

    def netcheck(self):
        out = subprocess.run(
            [os.path.join(BUILD, "examples", "parley-netcheck"), "--json",
             "--bind", "127.0.0.1:0", "--include-loopback",
             "--stun", f"127.0.0.1:{self.port}"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_reflexive_address_is_the_sockets_own(self):
        r = self.netcheck()
        self.assertEqual(r["stun_servers"][0]["status"], "ok")
        self.assertEqual(r["stun_servers"][0]["mapped"], r["local"])
        self.assertEqual(r["mapped"], r["local"])
        self.assertTrue(r["local"].startswith("127.0.0.1:"))

    def test_rfc5780_discovery_against_coturn(self):
        r = self.netcheck()
        self.assertEqual(r["other_address"], f"127.0.0.2:{self.port + 1}")
        self.assertEqual(r["mapping"], "endpoint-independent")
        self.assertEqual(r["filtering"], "endpoint-independent")
        self.assertEqual(r["classification"], "open-internet")


class CoturnClientsAgainstParley(unittest.TestCase):
    def setUp(self):
        for tool in ("turnutils_stunclient", "turnutils_natdiscovery"):
            if shutil.which(tool) is None:
                self.fail(f"coturn's {tool} is not installed (scripts/setup-deps installs it)")
        self.port = free_udp_port()
        self.server = Server(
            [os.path.join(BUILD, "tests", "parley-stun-server"),
             "--listen", f"127.0.0.1:{self.port}", "--alt", f"127.0.0.2:{self.port + 1}"],
            os.path.join(BUILD, "parley-stun-server-interop.log"))
        self.addCleanup(self.server.stop)
        wait_until_serving("127.0.0.1", self.port)

    def test_stunclient_gets_its_reflexive_address(self):
        out = subprocess.run(
            ["turnutils_stunclient", "-p", str(self.port), "-L", "127.0.0.1", "127.0.0.1"],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        m = re.search(r"UDP reflexive addr: (\S+):(\d+)", out.stdout)
        self.assertIsNotNone(m, out.stdout)
        self.assertEqual(m.group(1), "127.0.0.1")

    def test_natdiscovery_classifies_loopback_through_parley(self):
        # -P pads requests: parley answers with OTHER-ADDRESS only when the request is large
        # enough that the answer cannot amplify (request + XOR-MAPPED-ADDRESS at most).
        out = subprocess.run(
            ["turnutils_natdiscovery", "-m", "-f", "-P", "-p", str(self.port), "127.0.0.1"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Endpoint Independent Mapping", out.stdout)
        self.assertIn("Endpoint Independent Filtering", out.stdout)
        self.assertIn(f"Other addr: : 127.0.0.2:{self.port + 1}", out.stdout)
        # Every reflexive address reported equals the local address of that run.
        refl = re.findall(r"UDP reflexive addr: 127\.0\.0\.1:(\d+)", out.stdout)
        local = re.findall(r"Local addr: : 0\.0\.0\.0:(\d+)", out.stdout)
        self.assertTrue(refl and local)
        self.assertTrue(set(local) <= set(refl), out.stdout)

    def test_unpadded_requests_get_no_amplifying_extras(self):
        out = subprocess.run(
            ["turnutils_natdiscovery", "-m", "-p", str(self.port), "127.0.0.1"],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("Other addr", out.stdout)


if __name__ == "__main__":
    BUILD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
