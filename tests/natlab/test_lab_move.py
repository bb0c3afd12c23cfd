"""Self-check of ``Lab.move_host`` / ``unplug`` / ``plug``: a phone changing networks mid-call.

A real process (this file's ``session`` mode: UDP sockets bound before the move to 0.0.0.0:40000
and [::]:40000) keeps running in the host's namespace while the host moves between sites; its
requests to udp_probe.py's echo server in the server namespace show from which public address
the packets now arrive, and the answers coming back prove the new NAT's return path.

* ``MoveHostTest`` -- one process through full-cone -> symmetric -> double -> none -> same-lan
  -> full-cone again: each time the server sees the new site's public address (and the pinned
  port where the site pins), the old site forgets the host (pins, conntrack: an outsider no
  longer reaches the old full-cone mapping), the new full-cone pin lets the outsider in, and
  another host of the same-lan site keeps its mapping -- and its router: the routers' LAN
  bridges keep their MAC addresses while ports come and go.  Every move is timed (< 1 s).
* ``UnplugPlugTest`` -- after ``unplug`` the host has only ``lo``, sends fail
  (ENETUNREACH) and nothing reaches the server; after ``plug`` on another site the traffic
  comes from that site's public address; ``plug`` back home gives a new address.
* ``DualStackMoveTest`` -- IPv4-only -> dual-stack -> v6-firewall -> none with IPv6 ->
  IPv4-only: each family works exactly where the site has it (from the host's new global
  IPv6 address where there is no NAT66).
* ``Nat64MoveTest`` -- onto a v6-only-nat64 site: IPv4 servers through the NAT64 prefix from
  the site's public IPv4 address, the DNS64 in the host's resolv.conf; and back.

Run (as root):  cd tests/natlab && /usr/bin/python3 run.py test_lab_move
"""

import errno
import ipaddress
import itertools
import os
import select
import socket
import sys
import time
import unittest

from natlab import (IP, PYTHON, Lab, check_ipv6_prerequisites, hostport, lines_of,
                    nat64_synth, probe, send_line, server_endpoints, server_endpoints6,
                    start_echo, wait_for_line, wait_for_match)

S1, S2 = "203.0.113.10", "203.0.113.11"
S1_6 = "2001:db8:0:ff::10"
PORT = 3478
HOST_PORT = 40000
ASK_S = 3.0      # deadline for an answer that must come (they take ~1 ms)
NEG_S = 0.4      # how long a request that must NOT be answered is retried
MOVE_BOUND_S = 1.0
THIS = os.path.abspath(__file__)


def ep(ip, port):
    return hostport(ip, port)


class MoveCase(unittest.TestCase):
    """A fresh lab per test with the echo server; ``session`` / ``ask`` drive the process that
    lives through the moves."""

    ipv6 = False

    def setUp(self):
        if self.ipv6:
            check_ipv6_prerequisites()
        self.lab = Lab()
        self.addCleanup(self.lab.close)
        self.lab.start()
        self.server = self.lab.add_server(ipv6=self.ipv6)
        binds = server_endpoints(self.server) + (server_endpoints6(self.server)
                                                 if self.ipv6 else [])
        self.echo = start_echo(self.lab, self.server, binds)
        self.nonces = itertools.count(1)
        self.move_times = []

    def session(self, host, binds=("0.0.0.0:40000",)):
        argv = [PYTHON, THIS, "session"]
        for b in binds:
            argv += ["--bind", b]
        proc = self.lab.spawn(host, argv, stdin=True)
        m = wait_for_line(proc, r"^ready (\d+) ", 10)
        proc.natlab_session_pid = int(m.group(1))
        return proc

    def ask(self, sess, dest, timeout=ASK_S):
        """``(observed, send_error)``: the address the echo server saw (None: no answer) and
        the errno name of a failed send (None: every send went out)."""
        nonce = self.last_nonce = f"n{next(self.nonces)}"
        send_line(sess, f"ask {nonce} {dest} {timeout}")
        _, m = wait_for_match(sess, rf"^(answer|noanswer) {nonce}(?: (\S+) (\S+))?$",
                              timeout + 5)
        errs = [ln.split()[2] for ln in lines_of(sess) if ln.startswith(f"senderror {nonce} ")]
        if m.group(1) == "answer":
            self.assertEqual(m.group(3), dest, "the answer came from elsewhere")
        return (m.group(2) if m.group(1) == "answer" else None), (errs[0] if errs else None)

    def move(self, host, site):
        t = time.monotonic()
        self.lab.move_host(host, site)
        dt = time.monotonic() - t
        self.move_times.append(dt)
        self.assertLess(dt, MOVE_BOUND_S, f"move_host to {site.name} took {dt:.3f} s")
        return dt

    def report_moves(self):
        if self.move_times:
            ms = sorted(1000 * t for t in self.move_times)
            print(f"\n    move_host: {len(ms)} moves, {ms[0]:.0f} .. {ms[-1]:.0f} ms "
                  f"(median {ms[len(ms) // 2]:.0f} ms)", file=sys.stderr)

    def assertForgotten(self, site, old_ip):
        """No conntrack entry of ``old_ip`` on the site's routers, no pin of it."""
        forms = {old_ip, ipaddress.ip_address(old_ip).exploded}   # /proc writes IPv6 long
        for r in site.routers:
            ct = self.lab.conntrack(r)
            for a in forms:
                self.assertNotIn(f"src={a} ", ct, f"{r.name} still has entries of {old_ip}")
            self.assertNotIn(f" {old_ip} ", r.nft_rules or "", f"{r.name} still pins {old_ip}")

    def assertAlive(self, sess):
        self.assertIsNone(sess.poll(), "the session process died")
        readies = [ln for ln in lines_of(sess) if ln.startswith("ready ")]
        self.assertEqual(len(readies), 1, "the session process was restarted?")

    def lan_macs(self):
        """``{router: MAC of its LAN bridge}`` for every router of the lab."""
        out = {}
        for n in self.lab.nodes.values():
            if n.role == "router":
                cp = self.lab.run(n, [IP, "-o", "link", "show", "dev", "lan0"], timeout=5)
                out[n.name] = cp.stdout.split("link/ether ", 1)[1].split()[0]
        return out

    def links(self, host):
        cp = self.lab.run(host, [IP, "-o", "link"], timeout=5)
        return sorted(ln.split(":")[1].strip().split("@")[0] for ln in cp.stdout.splitlines())


class MoveHostTest(MoveCase):

    def test_move_across_nat_types_keeps_the_process(self):
        lab = self.lab
        fc = lab.add_site("fc", "full-cone")            # 1: 203.0.113.20, 10.0.1.0/24
        sym = lab.add_site("sym", "symmetric")          # 2: .30
        dbl = lab.add_site("dbl", "double")             # 3: .40
        opn = lab.add_site("open", "none")              # 4: .50
        lan = lab.add_site("lan", "same-lan")           # 5: .60, two hosts
        outsider = lab.add_public_host("outsider")      # 203.0.113.200
        h = fc.host
        sess = self.session(h)
        srv = ep(S1, PORT)
        macs = self.lan_macs()

        def knock(mapping):
            """An unsolicited probe from the outsider to ``mapping``: the session answers it."""
            return probe(lab, outsider, ep(outsider.ip, 5000), [mapping],
                         timeout=NEG_S)[0]["observed"]

        # Home: full cone, pinned 40000, open to anyone.
        self.assertEqual(self.ask(sess, srv), (ep(fc.public_ip, HOST_PORT), None))
        self.assertEqual(knock(ep(fc.public_ip, HOST_PORT)), ep(outsider.ip, 5000))

        # -> symmetric: a new LAN address (index 1), a random public port.
        old = h.ip
        self.move(h, sym)
        self.assertEqual((h.ip, h.ips6), ("10.0.2.3", []))
        self.assertEqual([x.name for x in sym.hosts], ["sym-h0", h.name])
        self.assertEqual((fc.hosts, fc.public_ports), ([], {}))
        observed, err = self.ask(sess, srv)
        self.assertIsNone(err)
        self.assertEqual(observed.rsplit(":", 1)[0], sym.public_ip)
        self.assertIsNone(sym.public_port(h))
        self.assertForgotten(fc, old)
        # The old full-cone mapping no longer leads to the host (pin and DNAT entry gone).
        self.assertIsNone(knock(ep(fc.public_ip, HOST_PORT)))

        # -> double: pinned on both layers to host_port + 1.
        old = h.ip
        self.move(h, dbl)
        self.assertEqual(h.ip, "10.0.3.3")
        self.assertEqual(dbl.public_port(h), HOST_PORT + 1)
        self.assertEqual(self.ask(sess, srv), (ep(dbl.public_ip, HOST_PORT + 1), None))
        self.assertForgotten(sym, old)

        # -> none: the site's next public address, no NAT.
        old, inner_wan = h.ip, dbl.routers[0].wan_ip
        self.move(h, opn)
        self.assertEqual(h.ip, "203.0.113.51")
        self.assertEqual(self.ask(sess, srv), (ep(h.ip, HOST_PORT), None))
        self.assertForgotten(dbl, old)
        self.assertNotIn(f"src={inner_wan} dst={S1} sport={HOST_PORT + 1} ",
                         lab.conntrack(dbl.router), "the outer layer kept the mapping")

        # -> same-lan, where another host is in a flow: it keeps its mapping.
        other = self.session(lan.hosts[0])
        self.assertEqual(self.ask(other, srv), (ep(lan.public_ip, HOST_PORT), None))
        self.move(h, lan)
        self.assertEqual(h.ip, "10.0.5.4")
        self.assertEqual(self.ask(sess, srv), (ep(lan.public_ip, HOST_PORT + 2), None))
        self.assertEqual(self.ask(other, srv), (ep(lan.public_ip, HOST_PORT), None))
        self.assertEqual(lan.public_ports, {"lan-h0": 40000, "lan-h1": 40001, h.name: 40002})

        # -> home again: a new address, pinned and DNAT'ed on host_port + 1.
        self.move(h, fc)
        self.assertEqual(h.ip, "10.0.1.3")
        self.assertEqual(self.ask(sess, srv), (ep(fc.public_ip, HOST_PORT + 1), None))
        self.assertEqual(knock(ep(fc.public_ip, HOST_PORT + 1)), ep(outsider.ip, 5000))
        self.assertEqual(self.links(h), ["eth0", "lo"])
        # The LAN bridges kept their MACs while ports came and went (else the hosts that
        # stayed would still send to the old one, dropped, and lose their router).
        self.assertEqual(self.lan_macs(), macs)
        self.assertAlive(sess)
        self.report_moves()


class UnplugPlugTest(MoveCase):

    def test_unplug_then_plug(self):
        lab = self.lab
        a = lab.add_site("a", "port-restricted")
        b = lab.add_site("b", "port-restricted")
        h = a.host
        sess = self.session(h)
        srv = ep(S1, PORT)
        self.assertEqual(self.ask(sess, srv), (ep(a.public_ip, HOST_PORT), None))

        t = time.monotonic()
        lab.unplug(h)
        unplug_s = time.monotonic() - t
        self.assertEqual(self.links(h), ["lo"])
        self.assertEqual((h.ips, h.ips6, a.hosts, a.public_ports), ([], [], [], {}))
        self.assertForgotten(a, "10.0.1.2")
        observed, err = self.ask(sess, srv, timeout=NEG_S)
        self.assertEqual((observed, err), (None, "ENETUNREACH"))
        dead = self.last_nonce

        # Misuse is refused without changing anything.
        with self.assertRaises(ValueError):
            lab.unplug(h)
        with self.assertRaises(ValueError):
            lab.move_host(h, b)
        with self.assertRaises(ValueError):
            lab.move_host(self.server, b)

        t = time.monotonic()
        lab.plug(h, b)
        plug_s = time.monotonic() - t
        self.assertEqual(h.ip, "10.0.2.3")
        self.assertEqual(self.ask(sess, srv), (ep(b.public_ip, HOST_PORT + 1), None))
        with self.assertRaises(ValueError):
            lab.plug(h, a)                           # still plugged into b

        # Back home after another outage: a new address and pin there.
        lab.unplug(h)
        lab.plug(h, a)
        self.assertEqual(h.ip, "10.0.1.3")
        self.assertEqual(self.ask(sess, srv), (ep(a.public_ip, HOST_PORT + 1), None))
        self.assertEqual(b.public_ports, {"b-h0": HOST_PORT})

        # The datagram "sent" while unplugged never reached the server.
        wait_for_match(self.echo, rf" natlab-probe {self.last_nonce}$", 5)
        self.assertFalse([ln for ln in lines_of(self.echo)
                          if ln.endswith(f" natlab-probe {dead}")])
        self.assertAlive(sess)
        print(f"\n    unplug {1000 * unplug_s:.0f} ms, plug {1000 * plug_s:.0f} ms",
              file=sys.stderr)


class DualStackMoveTest(MoveCase):
    ipv6 = True

    def test_move_between_ipv4_dual_stack_and_ipv6_only(self):
        lab = self.lab
        v4 = lab.add_site("v4", "port-restricted")                # 1
        ds = lab.add_site("ds", "dual-stack")                     # 2: 2001:db8:2::/64
        fw = lab.add_site("fw", "v6-firewall")                    # 3
        opn = lab.add_site("open", "none", ipv6=True)             # 4: .50 and ::50
        h = v4.host
        sess = self.session(h, ["0.0.0.0:40000", "[::]:40000"])
        srv4, srv6 = ep(S1, PORT), ep(S1_6, PORT)

        self.assertEqual(self.ask(sess, srv4), (ep(v4.public_ip, HOST_PORT), None))
        observed, err = self.ask(sess, srv6, timeout=NEG_S)
        self.assertIsNone(observed)
        self.assertIn(err, ("ENETUNREACH", "EADDRNOTAVAIL"))

        self.move(h, ds)
        self.assertEqual((h.ip, h.ip6), ("10.0.2.3", "2001:db8:2::3"))
        self.assertEqual(self.ask(sess, srv4), (ep(ds.public_ip, HOST_PORT + 1), None))
        self.assertEqual(self.ask(sess, srv6), (ep(h.ip6, HOST_PORT), None))   # no NAT66

        old6 = h.ip6
        self.move(h, fw)
        self.assertEqual((h.ips, h.ip6), ([], "2001:db8:3::3"))
        self.assertEqual(self.ask(sess, srv6), (ep(h.ip6, HOST_PORT), None))
        observed, err = self.ask(sess, srv4, timeout=NEG_S)
        self.assertEqual((observed, err), (None, "ENETUNREACH"))
        self.assertForgotten(ds, "10.0.2.3")
        self.assertForgotten(ds, old6)

        self.move(h, opn)
        self.assertEqual((h.ip, h.ip6), ("203.0.113.51", "2001:db8:0:ff::51"))
        self.assertEqual(self.ask(sess, srv4), (ep(h.ip, HOST_PORT), None))
        self.assertEqual(self.ask(sess, srv6), (ep(h.ip6, HOST_PORT), None))
        # A site made now routes its /64 from the moved public host too (and reaches it).
        late = lab.add_site("late", "v6-firewall")
        late_sess = self.session(late.host, ["[::]:40000"])
        self.assertEqual(self.ask(late_sess, ep(h.ip6, HOST_PORT)),
                         (ep(late.host.ip6, HOST_PORT), None))

        self.move(h, v4)                       # IPv4-only again: IPv6 off in the namespace
        self.assertEqual((h.ip, h.ips6), ("10.0.1.3", []))
        self.assertEqual(self.ask(sess, srv4), (ep(v4.public_ip, HOST_PORT + 1), None))
        observed, err = self.ask(sess, srv6, timeout=NEG_S)
        self.assertIsNone(observed)
        self.assertIsNotNone(err)
        lab.add_site("later", "v6-firewall")   # the host left the public IPv6 nodes' list
        self.assertAlive(sess)
        self.report_moves()


class Nat64MoveTest(MoveCase):
    ipv6 = True

    def test_move_onto_a_nat64_site_and_back(self):
        check_ipv6_prerequisites(nat64=True)
        lab = self.lab
        v4 = lab.add_site("v4", "port-restricted")
        n = lab.add_site("n", "v6-only-nat64")
        h = v4.host
        sess = self.session(h, ["0.0.0.0:40000", "[::]:40000"])
        resolv = os.path.join("/etc/netns", h.ns, "resolv.conf")

        self.move(h, n)
        self.assertEqual((h.ips, h.ip6), ([], "2001:db8:2::3"))
        observed, err = self.ask(sess, ep(nat64_synth(S1, n.nat64_prefix), PORT))
        self.assertIsNone(err)
        self.assertEqual(observed.rsplit(":", 1)[0], n.public_ip)
        self.assertIsNone(n.public_port(h))     # no tayga static map: not pinned
        self.assertEqual(self.ask(sess, ep(S1, PORT), timeout=NEG_S), (None, "ENETUNREACH"))
        self.assertEqual(lab.resolvers(h), [n.dns64])
        with open(resolv) as f:
            self.assertIn(f"nameserver {n.dns64}\n", f.read())

        self.move(h, v4)
        self.assertEqual(h.ip, "10.0.1.3")
        self.assertEqual(self.ask(sess, ep(S1, PORT)), (ep(v4.public_ip, HOST_PORT + 1), None))
        self.assertEqual(lab.resolvers(h), [])
        with open(resolv) as f:
            self.assertNotIn("nameserver", f.read())
        self.assertAlive(sess)
        self.report_moves()


# --------------------------------------------------------------------------------------------
# The process that lives through the moves (run inside the host's namespace)

def _fmt(addr):
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _parse(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def session(binds):
    """UDP sockets bound once; stdin commands ``ask NONCE DEST TIMEOUT`` send
    ``natlab-probe NONCE`` to DEST every 100 ms until ``natlab-observed NONCE ...`` comes back
    (``answer NONCE OBSERVED REPLY_SRC``) or TIMEOUT s pass (``noanswer NONCE``); the first
    failed send prints ``senderror NONCE ERRNO``.  Unsolicited ``natlab-probe`` datagrams are
    answered like udp_probe.py's server does (``recv PEER PAYLOAD``).  Exits at stdin EOF."""
    socks = []
    for b in binds:
        addr = _parse(b)
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(addr)
        socks.append(s)
    print("ready", os.getpid(), *[_fmt(s.getsockname()) for s in socks], flush=True)
    buf, queue, cur = b"", [], None
    while True:
        now = time.monotonic()
        if cur is None and queue:
            nonce, dest, timeout = queue.pop(0)
            addr = _parse(dest)
            fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
            sock = next((s for s in socks if s.family == fam), None)
            cur = dict(nonce=nonce, dest=addr, sock=sock, deadline=now + float(timeout),
                       next=now, err=False)
        if cur is not None:
            if now >= cur["deadline"]:
                print("noanswer", cur["nonce"], flush=True)
                cur = None
                continue
            if now >= cur["next"]:
                try:
                    if cur["sock"] is None:
                        raise OSError(errno.EAFNOSUPPORT, "no socket of that family")
                    cur["sock"].sendto(f"natlab-probe {cur['nonce']}".encode(), cur["dest"])
                except OSError as e:
                    if not cur["err"]:
                        print("senderror", cur["nonce"], errno.errorcode.get(e.errno, e.errno),
                              flush=True)
                        cur["err"] = True
                cur["next"] = now + 0.1
            wait = max(0.0, min(cur["next"], cur["deadline"]) - now)
        else:
            wait = None
        ready, _, _ = select.select([0] + socks, [], [], wait)
        for r in ready:
            if r == 0:
                data = os.read(0, 4096)
                if not data:
                    return 0
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    parts = line.decode().split()
                    if len(parts) == 4 and parts[0] == "ask":
                        queue.append(tuple(parts[1:]))
                continue
            try:
                data, peer = r.recvfrom(2048)
            except OSError:
                continue
            parts = data.decode("utf-8", "replace").split()
            if (cur is not None and len(parts) == 3 and parts[:2] == ["natlab-observed",
                                                                     cur["nonce"]]):
                print("answer", cur["nonce"], parts[2], _fmt(peer), flush=True)
                cur = None
                continue
            print("recv", _fmt(peer), " ".join(parts), flush=True)
            if len(parts) >= 2 and parts[0] == "natlab-probe":
                try:
                    r.sendto(f"natlab-observed {parts[1]} {_fmt(peer)}".encode(), peer)
                except OSError:
                    pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["session"]:
        import argparse
        ap = argparse.ArgumentParser()
        ap.add_argument("--bind", action="append", required=True)
        sys.exit(session(ap.parse_args(sys.argv[2:]).bind))
    unittest.main()
