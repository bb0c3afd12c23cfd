"""The relay by name (issue 17): parties given ``relay.natlab.test:3478`` resolve it through
the lab's DNS server (a real unbound, natlab.add_dns) from behind their NATs.

Needs root, unbound, and the variables of test_calls.py (PARLEY_RELAY, PARLEY_CALL_PEER).

* ``RelayNameTest.test_call_by_name_follows_the_relay_when_it_moves`` -- a relayed call
  between two port-restricted sites with the relay given by name; then the relay moves: a
  second relay (same seed) starts on the server's other address, the name is pointed at it,
  and the old one is stopped (SIGTERM).  Both parties resolve the name again on their
  reconnect, reach the new address and resume the call; the gap is printed.
* ``RelayNameTest.test_names_that_cannot_be_used`` -- a name the DNS does not know gives a
  relay backoff with ``kErrNameNotFound`` (-47); a name with only an AAAA record, for a
  party whose socket is IPv4, gives ``kErrNoUsableAddress`` (-48).  Neither registers.
* ``RelayNameTest.test_closing_never_waits_for_dns`` -- the lab's DNS server black-holed, so
  the party's lookup of the relay's name hangs for the system resolver's timeout; the party
  gives up waiting for registration after 1 s and destroys its context, which must return
  at once (the lookup is abandoned, not waited for).

Run (as root): cd tests/natlab && PARLEY_RELAY=... PARLEY_CALL_PEER=... \\
    /usr/bin/python3 run.py test_relay_name
"""

import time
import types
import unittest

from natlab import DNS_ZONE, wait_for_line
from test_calls import Peer, Relay
from test_resume import NO_DIRECT, ResumeCase, _out

ERR_NAME_NOT_FOUND = -47    # kErrNameNotFound (src/base/error.h)
ERR_NO_USABLE_ADDRESS = -48
PORT = 3478
MOVE_LIMIT_S = 5.0          # the old relay's graceful stop, a reconnect and a resume
EVENT_TIMEOUT = 10.0
READY_GIVE_UP_MS = 1000
CLOSE_LIMIT_MS = 1000       # the resolver's timeout is set to 5 s per try


class RelayNameTest(ResumeCase):
    def setUp(self):
        super().setUp()
        lab, server = self.env.lab, self.env.server
        self.old_ip, self.new_ip = server.ips[0], server.ips[1]
        lab.add_dns({"relay": [self.old_ip], "v6only": ["2001:db8:0:ff::10"]}, ipv6=False)
        self.name = f"relay.{DNS_ZONE}:{PORT}"
        real = self.env.relay
        # The peers dial what `addr` says: the name, not the relay's address.
        self.env.relay = types.SimpleNamespace(addr=self.name, fp=real.fp, proc=real.proc)

    def test_call_by_name_follows_the_relay_when_it_moves(self):
        a, b, call = self.relayed_call("n")
        peers = list(call.peers)
        self.reset_and_receive(peers)
        marks = [p.mark() for p in peers]
        moved = Relay(self.env.lab, self.env.server, self.env.relay_bin, self.env.seed("relay"),
                      listen=f"{self.new_ip}:{PORT}")
        self.relays.append(moved)
        self.assertEqual(moved.fp, self.env.relay.fp)
        self.env.lab.dns_set("relay", [self.new_ip])
        t_stop = self.stop_relay("term")
        before = [p.stats()["unique"] for p in peers]
        times, st = self.wait_counts(peers, lambda s: {"unique": s["unique"]},
                                     [{"unique": n} for n in before], t_stop, MOVE_LIMIT_S)
        self.assert_not_ended(peers)
        _out(f"relay moved {self.old_ip} -> {self.new_ip} behind {self.name}: frames again "
             + " / ".join(f"{times[(i, 'unique')] * 1000:.0f} ms" if (i, "unique") in times
                          else "never" for i in range(len(peers)))
             + " after the old relay's SIGTERM")
        for i, p in enumerate(peers):
            self.assertIn((i, "unique"), times, f"{p.name}: no frame within {MOVE_LIMIT_S}s of "
                          f"the move (relay events {self.relay_timeline(p, marks[i])})"
                          + self.ctx())
        self.hangup_reaches(call.caller, call.callee, "after the move")

    def test_names_that_cannot_be_used(self):
        lab = self.env.lab
        cases = [("nosuch", ERR_NAME_NOT_FOUND), ("v6only", ERR_NO_USABLE_ADDRESS)]
        for k, (host, want) in enumerate(cases):
            site = lab.add_site(f"x{k}", "port-restricted")
            relay = types.SimpleNamespace(addr=f"{host}.{DNS_ZONE}:{PORT}", fp=self.env.relay.fp)
            peer = Peer(lab, site.host, self.env.peer_bin, relay, self.env.seed(f"x{k}"),
                        name=f"{host} party", extra=NO_DIRECT)
            self.parties.append(peer)
            self.addCleanup(peer.quit)
            t = time.monotonic()
            _, ev = peer.wait_event("relay", EVENT_TIMEOUT,
                                    pred=lambda e: e.get("state") == "backoff")
            _out(f"{host}.{DNS_ZONE}: backoff with error {ev['error']} after "
                 f"{(time.monotonic() - t) * 1000:.0f} ms")
            self.assertEqual(ev["error"], want, f"{host}: the backoff's error" + self.ctx())
            self.assertEqual(peer.events("ready"), [], f"{host}: registered" + self.ctx())

    def test_closing_never_waits_for_dns(self):
        lab = self.env.lab
        lab.blackhole(lab.dns)
        site = lab.add_site("q", "port-restricted")
        # The system resolver's usual patience (the lab's is 1 s), so a close that waited
        # for the lookup would take seconds.
        path = f"/etc/netns/{site.host.ns}/resolv.conf"
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("timeout:1", "timeout:5"))
        peer = Peer(lab, site.host, self.env.peer_bin, self.env.relay, self.env.seed("q"),
                    name="party with a hanging lookup",
                    extra=NO_DIRECT + ("--ready-timeout-ms", str(READY_GIVE_UP_MS)))
        self.parties.append(peer)
        self.addCleanup(peer.quit)
        t = time.monotonic()
        wait_for_line(peer.proc, r"^not registered", EVENT_TIMEOUT, stream="stderr")
        t_gave_up = time.monotonic()
        peer.proc.wait(timeout=EVENT_TIMEOUT)
        closed_ms = (time.monotonic() - t_gave_up) * 1000
        _out(f"DNS black-holed: gave up registering after {(t_gave_up - t) * 1000:.0f} ms, "
             f"context destroyed and process gone {closed_ms:.0f} ms later")
        self.assertEqual(peer.events("ready"), [], "registered without DNS" + self.ctx())
        self.assertLess(closed_ms, CLOSE_LIMIT_MS, "destroying the context waited for DNS")


if __name__ == "__main__":
    unittest.main()
