"""Calls and rooms outlive the relay (issue 26): restarts, outages and the no-path timeout.

Needs root and the same two environment variables as test_calls.py (the tests skip, saying
which, when unset):

    PARLEY_RELAY       path to parley-relay
    PARLEY_CALL_PEER   path to parley-call-peer (tests/tools/call_peer.cc)

Every test builds its own lab with test_calls.py's classes: ``parley-relay`` in the server
namespace (203.0.113.10:3478), every party a ``parley-call-peer`` behind its own
port-restricted NAT (hole punching works: direct calls go direct; ``--no-direct`` on both
sides keeps a call on the relay).  What is checked:

* ``RelayRestartTest`` -- the relay is killed (``kill -9``, or ``SIGTERM`` and its own exit)
  and started again with the same seed and address during
  - a direct call: both sides register again by themselves; the call never leaves the
    direct path, loses no frame (``missing`` == 0 since just before the stop, with >= 100
    more frames after the re-registration) and does not end; a hangup afterwards reaches
    the other side through the new relay (``ended``, error 0);
  - a relayed call: frames flow again on both sides at most ``GAP_LIMIT_S`` after the new
    relay's ``listening`` line; the call does not end;
  - a room of three: every member receives from both others again within ``GAP_LIMIT_S`` of
    ``listening`` (the members re-join by themselves).
* ``RelayOutageTest`` -- one party of a direct call cannot reach the relay for
  ``OUTAGE_S`` (60 s; its router drops UDP to and from the relay): the call stays direct with
  no frame missing and does not end; once the block is lifted that party registers again and
  its hangup reaches the other side through the relay (``ended``, error 0).
* ``PeerGoneTest`` -- the callees of a relayed and of a direct call are killed (no hangup):
  the relay ends both calls for the callers (``kErrPeerUnavailable``) after its idle timeout
  and ``--left-call-timeout-ms``.
* ``NoPathTimeoutTest`` -- both parties of a relayed call and of a direct call run with
  ``--no-path-timeout-ms 3000``; the relay is killed and stays away: the relayed call ends on
  both sides with ``kErrNoPath`` (-46) 3 to 8 s after the kill, the direct call goes on
  (frames arrive for more than 6 s after the kill, no ``ended``).

Measured numbers (gaps, missing frames, re-registration times) are printed.  No test sleeps
to synchronise: every wait is for a line of output or a stats answer meeting a condition,
against a deadline.

Run (as root):
    cd tests/natlab && PARLEY_RELAY=... PARLEY_CALL_PEER=... \\
        /usr/bin/python3 run.py test_resume
One test: /usr/bin/python3 run.py test_resume.RelayRestartTest.test_kill_relayed_call
"""

import os
import signal
import subprocess
import threading
import time
import unittest

from natlab import lines_of, send_line
from test_calls import (BUDGET_MS, MARGIN_S, RELAY_LISTEN, D, CallEnv, Peer, Relay, _fmt_stats)

ERR_NO_PATH = -46           # kErrNoPath (src/base/error.h)
GAP_LIMIT_S = 2.0           # the bound on the media gap after a relay restart
GAP_MEASURE_S = 10.0        # how long a gap is measured before it counts as "never"
REGISTER_TIMEOUT = 20.0     # a client's reconnect backoff tops out at 10 s
HANGUP_TIMEOUT = 5.0
TERM_EXIT_TIMEOUT = 10.0    # the relay's graceful shutdown is bounded at 3 s by default
DIRECT_FRAMES_AFTER = 100   # ~2 s at 50 fps, after both sides registered again
OUTAGE_S = float(os.environ.get("PARLEY_RESUME_OUTAGE_S", "60"))
NO_PATH_TIMEOUT_MS = 3000
NO_PATH_END_MIN_S, NO_PATH_END_MAX_S = NO_PATH_TIMEOUT_MS / 1000, 8.0
DIRECT_SURVIVES_S = 8.5     # > 6 s, and past the latest allowed end of the relayed call
RELAY_IP = RELAY_LISTEN.split(":")[0]
NO_DIRECT = ("--no-direct",)


def _registered(ev):
    return ev.get("state") == "registered"


def _out(text):
    print(text, flush=True)


class ResumeCase(unittest.TestCase):
    """A lab with a relay, and the ways to stop it and bring it back."""

    maxDiff = None

    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay()
        self.relays = [self.env.relay]
        self.parties = []            # every Peer, for failure messages

    # -- the relay ---------------------------------------------------------------------------

    def stop_relay(self, how):
        """Stop the running relay: "kill" (SIGKILL) or "term" (SIGTERM, it exits by itself).
        Returns the time of the signal."""
        proc = self.env.relay.proc
        t = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL if how == "kill" else signal.SIGTERM)
        try:
            code = proc.wait(timeout=TERM_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"the relay did not exit within {TERM_EXIT_TIMEOUT}s of "
                      f"{'SIGKILL' if how == 'kill' else 'SIGTERM'}" + self.ctx())
        took = time.monotonic() - t
        _out(f"relay {'kill -9' if how == 'kill' else 'SIGTERM'}: exited after "
             f"{took * 1000:.0f} ms, code {code}")
        if how == "term":
            self.assertEqual(code, 0, "the relay's exit status after SIGTERM" + self.ctx())
        return t

    def restart_relay(self):
        """Start the relay again with the same seed and address; the time of its listening
        line (Relay returns as soon as it has read it)."""
        old = self.env.relay
        relay = Relay(self.env.lab, self.env.server, self.env.relay_bin,
                      self.env.seed("relay"))
        t_listen = time.monotonic()
        self.relays.append(relay)
        self.env.relay = relay
        self.assertEqual(relay.fp, old.fp, "the restarted relay has another identity")
        self.assertEqual(relay.addr, old.addr)
        return t_listen

    # -- diagnostics -------------------------------------------------------------------------

    @staticmethod
    def describe(peer, n=40):
        """Like Peer.describe, without the stats answers that would drown everything else
        (the last one is kept)."""
        out = lines_of(peer.proc)
        stats = [ln for ln in out if ln.startswith('{"ev":"stats"')]
        rest = [ln for ln in out if not ln.startswith('{"ev":"stats"')]
        err = lines_of(peer.proc, "stderr")
        return (f"--- {peer.name} ({peer.node.ns}) stdout, {len(stats)} stats answers left "
                f"out ---\n" + "\n".join(rest[-n:] + stats[-1:]) +
                f"\n--- {peer.name} stderr (last {n}) ---\n" + "\n".join(err[-n:]))

    def ctx(self):
        parts = [self.describe(p) for p in self.parties]
        for k, r in enumerate(self.relays):
            parts.append(f"--- relay #{k} stderr (last 30) ---\n"
                         + "\n".join(lines_of(r.proc, "stderr")[-30:]))
        return "\n" + "\n".join(parts) + "\n" + self.env.lab.describe()

    @staticmethod
    def relay_timeline(peer, start):
        """The peer's relay events since line ``start``: [(state, error, t)]."""
        return [(ev["state"], ev["error"], ev["t"]) for ev in peer.events("relay", start=start)]

    def assert_not_ended(self, peers):
        for p in peers:
            self.assertEqual(p.events("ended"), [], f"{p.name}: the call ended" + self.ctx())

    # -- waiting -----------------------------------------------------------------------------

    def wait_registered_again(self, peers, marks, t_ref):
        """Each peer reports relay state registered at line ``marks[i]`` or later; the seconds
        from ``t_ref`` at which the test saw it, per peer."""
        out = []
        for p, m in zip(peers, marks):
            try:
                p.wait_event("relay", max(0.1, t_ref + REGISTER_TIMEOUT - time.monotonic()),
                             pred=_registered, start=m)
            except TimeoutError:
                self.fail(f"{p.name} did not register again within {REGISTER_TIMEOUT}s "
                          f"(relay events: {self.relay_timeline(p, m)})" + self.ctx())
            out.append(time.monotonic() - t_ref)
        return out

    def wait_counts(self, peers, counts, thresholds, t_ref, timeout, pace=0.05):
        """Query every peer's stats (one round every ``pace`` s: load shaping, each answer is
        waited for) until every count ``counts(stats)[key]`` of peer i exceeds
        ``thresholds[i][key]`` or ``timeout`` s after ``t_ref`` pass.

        Returns ``(times, last_stats)``: ``times[(i, key)]`` = seconds from ``t_ref`` to the
        answer that first showed it (missing: never)."""
        deadline = t_ref + timeout
        times = {}
        want = {(i, k) for i, th in enumerate(thresholds) for k in th}
        while True:
            if any(p.events("ended") for p in peers):
                return times, [p.stats() for p in peers]     # the caller reports it
            sts = []
            for i, p in enumerate(peers):
                st = p.stats()
                now = time.monotonic()
                sts.append(st)
                c = counts(st)
                for k, th in thresholds[i].items():
                    if (i, k) not in times and c.get(k, 0) > th:
                        times[(i, k)] = now - t_ref
            if len(times) == len(want) or time.monotonic() >= deadline:
                return times, sts
            time.sleep(pace)

    def reset_and_receive(self, peers, counts=None, keys=None, n=10):
        """``reset`` the peers' receive measurements, then wait until each has ``n`` frames
        again (from every sender in ``keys[i]``; calls: ``unique``), so that what is counted
        from now on spans what the test does next (a loss at the stop shows as missing)."""
        counts = counts or (lambda s: {"unique": s["unique"]})
        keys = keys or [["unique"]] * len(peers)
        for p in peers:
            p.reset()
        times, st = self.wait_counts(peers, counts, [{k: n - 1 for k in ks} for ks in keys],
                                     time.monotonic(), 3.0)
        self.assertEqual(len(times), sum(len(ks) for ks in keys),
                         f"fewer than {n} frames within 3 s of the reset" + self.ctx())
        return st

    # -- the calls ---------------------------------------------------------------------------

    def direct_call(self, tag, extra=()):
        lab = self.env.lab
        a = lab.add_site(f"{tag}a", "port-restricted")
        b = lab.add_site(f"{tag}b", "port-restricted")
        call = self.env.call(a.host, b.host, tag, caller_extra=extra, callee_extra=extra)
        self.addCleanup(call.close)
        call.start()
        self.parties += list(call.peers)
        try:
            call.wait_path(D, call.remaining(BUDGET_MS / 1000 + MARGIN_S))
        except TimeoutError as e:
            self.fail(f"{tag}: no direct path: {e}" + self.ctx())
        # Frames in flight on the relay when the direct copy overtook them arrive a moment
        # later: start counting once both sides receive directly with nothing missing.
        met, st = call.poll_stats(
            lambda x, y: all(s["via_direct"] >= 10 and s["missing"] == 0 for s in (x, y)), 3.0)
        self.assertTrue(met, f"{tag}: frames do not flow directly" + self.ctx())
        return a, b, call

    def relayed_call(self, tag, extra=()):
        lab = self.env.lab
        a = lab.add_site(f"{tag}a", "port-restricted")
        b = lab.add_site(f"{tag}b", "port-restricted")
        call = self.env.call(a.host, b.host, tag, caller_extra=NO_DIRECT + tuple(extra),
                             callee_extra=NO_DIRECT + tuple(extra))
        self.addCleanup(call.close)
        call.start()
        self.parties += list(call.peers)
        met, _ = call.wait_flowing(call.stats(), 3.0)
        self.assertTrue(met, f"{tag}: frames do not flow over the relay" + self.ctx())
        return a, b, call

    def hangup_reaches(self, from_peer, to_peer, what):
        """``from_peer`` hangs up; ``to_peer`` must report ``ended`` with error 0."""
        m = to_peer.mark()
        t = time.monotonic()
        send_line(from_peer.proc, "hangup")
        try:
            _, ev = to_peer.wait_event("ended", HANGUP_TIMEOUT, start=m, fail_on_ended=False)
        except TimeoutError:
            self.fail(f"{what}: {to_peer.name} got no ended event within {HANGUP_TIMEOUT}s "
                      f"of {from_peer.name}'s hangup" + self.ctx())
        took = time.monotonic() - t
        _out(f"  hangup by {from_peer.name}: {to_peer.name} ended with error {ev['error']} "
             f"after {took * 1000:.0f} ms")
        self.assertEqual(ev["error"], 0, f"{what}: {to_peer.name} ended with an error instead "
                                         f"of the peer's hangup" + self.ctx())


# --------------------------------------------------------------------------------------------
# 1. The relay restarts

class RelayRestartTest(ResumeCase):
    """Stop the relay (kill -9 or SIGTERM), start it again with the same seed and address."""

    # -- a direct call -----------------------------------------------------------------------

    def direct(self, how):
        _, _, call = self.direct_call("d")
        self.reset_and_receive(call.peers)
        marks = call.marks()
        t_stop = self.stop_relay(how)
        t_listen = self.restart_relay()
        reg = self.wait_registered_again(call.peers, marks, t_listen)
        before = call.stats()
        met, st = call.poll_stats(
            lambda x, y: (x["unique"] >= before[0]["unique"] + DIRECT_FRAMES_AFTER and
                          y["unique"] >= before[1]["unique"] + DIRECT_FRAMES_AFTER), 6.0)
        paths = [(p.name, ev["from"], ev["to"], ev["reason"])
                 for p, m in zip(call.peers, marks) for ev in p.events("path", start=m)]
        _out(f"direct call, relay {how}: relay down {(t_listen - t_stop) * 1000:.0f} ms; "
             f"registered again {reg[0] * 1000:.0f} ms (caller) / {reg[1] * 1000:.0f} ms "
             f"(callee) after listening; path changes since the stop: {paths or 'none'}\n"
             f"  caller relay events: {self.relay_timeline(call.caller, marks[0])}\n"
             f"  callee relay events: {self.relay_timeline(call.callee, marks[1])}\n"
             f"  missing: caller {st[0]['missing']}, callee {st[1]['missing']} "
             f"(of {st[0]['unique']} / {st[1]['unique']} frames since the stop)\n  "
             + _fmt_stats("caller", st[0]) + "\n  " + _fmt_stats("callee", st[1]))
        self.assert_not_ended(call.peers)
        self.assertTrue(met, f"fewer than {DIRECT_FRAMES_AFTER} new frames within 6 s of "
                             f"the re-registration" + self.ctx())
        self.assertEqual(paths, [], "the call left the direct path" + self.ctx())
        for name, s in zip(("caller", "callee"), st):
            self.assertEqual(s["path"], D, name + self.ctx())
            self.assertEqual(s["missing"], 0, f"{name}: frames lost" + self.ctx())
            self.assertEqual(s["duplicates"], 0, f"{name}: frames delivered twice" + self.ctx())
        # The new relay knows the call: the caller's hangup reaches the callee through it.
        self.hangup_reaches(call.caller, call.callee, f"direct call, relay {how}")

    def test_kill_direct_call(self):
        self.direct("kill")

    def test_term_direct_call(self):
        self.direct("term")

    # -- a relayed call ----------------------------------------------------------------------

    def relayed(self, how):
        _, _, call = self.relayed_call("r")
        self.reset_and_receive(call.peers)
        marks = call.marks()
        t_stop = self.stop_relay(how)
        base = call.stats()              # nothing can arrive until the relay is back
        t_listen = self.restart_relay()
        times, st = self.wait_counts(call.peers, lambda s: {"unique": s["unique"]},
                                     [{"unique": s["unique"]} for s in base], t_listen,
                                     GAP_MEASURE_S)
        gaps = [times.get((i, "unique")) for i in range(2)]
        flowing = None
        if all(g is not None for g in gaps):
            # ... and keep flowing (~0.5 s more on both sides).
            _, after = self.wait_counts(call.peers, lambda s: {"unique": s["unique"]},
                                        [{"unique": s["unique"] + 24} for s in st],
                                        time.monotonic(), 3.0)
            flowing = [a["unique"] - b["unique"] for a, b in zip(after, st)]
            st = after
        reg = [[ev["t"] for ev in p.events("relay", start=m) if _registered(ev)]
               for p, m in zip(call.peers, marks)]
        fmt = lambda g: "never" if g is None else f"{g * 1000:.0f} ms"   # noqa: E731
        _out(f"relayed call, relay {how}: relay down {(t_listen - t_stop) * 1000:.0f} ms; "
             f"frames again {fmt(gaps[0])} (caller) / {fmt(gaps[1])} (callee) after the new "
             f"relay's listening line (limit {GAP_LIMIT_S * 1000:.0f} ms); then "
             f"{flowing} more frames\n"
             f"  caller relay events: {self.relay_timeline(call.caller, marks[0])}\n"
             f"  callee relay events: {self.relay_timeline(call.callee, marks[1])}\n"
             f"  missing since the stop (the outage): caller {st[0]['missing']}, "
             f"callee {st[1]['missing']}\n  "
             + _fmt_stats("caller", st[0]) + "\n  " + _fmt_stats("callee", st[1]))
        self.assert_not_ended(call.peers)
        for name, g, r in zip(("caller", "callee"), gaps, reg):
            self.assertTrue(r, f"{name} never reported registered again" + self.ctx())
            self.assertIsNotNone(g, f"{name}: no frame within {GAP_MEASURE_S}s of the "
                                    f"restart" + self.ctx())
            self.assertLessEqual(g, GAP_LIMIT_S, f"{name}: frames again only {g:.2f}s after "
                                                 f"the relay listened" + self.ctx())
        self.assertTrue(all(n > 24 for n in flowing), "frames stopped again" + self.ctx())

    def test_kill_relayed_call(self):
        self.relayed("kill")

    def test_term_relayed_call(self):
        self.relayed("term")

    # -- a room of three ---------------------------------------------------------------------

    def room(self, how):
        env, lab = self.env, self.env.lab
        room = os.urandom(16).hex()
        members = []
        for i in range(3):
            site = lab.add_site(f"m{i}", "port-restricted")
            p = Peer(lab, site.host, env.peer_bin, env.relay, env.seed(f"member{i}"),
                     name=f"member {i}", extra=("--room", room))
            self.addCleanup(p.quit)
            self.parties.append(p)
            members.append(p)
        for p in members:
            p.wait_ready()
        fps = [p.fp for p in members]
        others = [[fp for fp in fps if fp != me] for me in fps]
        counts = lambda s: {x["fp"]: x["unique"] for x in s["senders"]}   # noqa: E731
        t0 = time.monotonic()
        times, st = self.wait_counts(members, counts, [{fp: 0 for fp in o} for o in others],
                                     t0, 10.0)
        self.assertEqual(len(times), 6, f"not every member receives from both others: "
                                        f"{sorted(times)}" + self.ctx())
        self.reset_and_receive(members, counts, others)
        marks = [p.mark() for p in members]
        t_stop = self.stop_relay(how)
        base = [p.stats() for p in members]
        t_listen = self.restart_relay()
        times, st = self.wait_counts(
            members, counts, [{fp: counts(s).get(fp, 0) for fp in o}
                              for s, o in zip(base, others)], t_listen, GAP_MEASURE_S)
        rejoined = []
        for p, m in zip(members, marks):
            ev = [e["members"] for e in p.events("room", start=m)]
            rejoined.append(ev)
        fmt = lambda g: "never" if g is None else f"{g * 1000:.0f} ms"   # noqa: E731
        lines = []
        for i, p in enumerate(members):
            per = ", ".join(f"from member {fps.index(fp)} {fmt(times.get((i, fp)))}"
                            for fp in others[i])
            lost = {fps.index(x["fp"]): x["missing"] for x in st[i]["senders"]}
            lines.append(f"  member {i}: frames again {per}; missing (outage) per sender "
                         f"{lost}; room updates since the stop {rejoined[i]}; relay events "
                         f"{self.relay_timeline(p, marks[i])}")
        _out(f"room of three, relay {how}: relay down {(t_listen - t_stop) * 1000:.0f} ms; "
             f"gaps after the new relay's listening line (limit "
             f"{GAP_LIMIT_S * 1000:.0f} ms):\n" + "\n".join(lines))
        for i, p in enumerate(members):
            for fp in others[i]:
                g = times.get((i, fp))
                what = f"member {i} from member {fps.index(fp)}"
                self.assertIsNotNone(g, f"{what}: no frame within {GAP_MEASURE_S}s of the "
                                        f"restart" + self.ctx())
                self.assertLessEqual(g, GAP_LIMIT_S, f"{what}: frames again only {g:.2f}s "
                                                     f"after the relay listened" + self.ctx())
            self.assertIn(3, rejoined[i], f"member {i}: no room update with 3 members after "
                                          f"the restart" + self.ctx())

    def test_kill_room(self):
        self.room("kill")

    def test_term_room(self):
        self.room("term")


# --------------------------------------------------------------------------------------------
# 2. A party loses the relay for a minute

class RelayOutageTest(ResumeCase):
    """The caller's router drops all UDP to and from the relay for ``OUTAGE_S`` seconds
    during a direct call (the relay itself keeps running)."""

    def test_relay_unreachable_during_direct_call(self):
        lab = self.env.lab
        a, _, call = self.direct_call("o")
        self.reset_and_receive(call.peers)
        marks = call.marks()
        block = lab.block_udp(a.router, [RELAY_IP])
        t_block = time.monotonic()
        stalls, samples = [], 0
        last = call.stats()
        while time.monotonic() - t_block < OUTAGE_S:
            met, st = call.wait_flowing(last, 1.0, key="received")
            samples += 1
            if not met:
                stalls.append(round(time.monotonic() - t_block, 1))
            last = st
            if any(p.events("ended", start=m) for p, m in zip(call.peers, marks)):
                break
        st = call.stats()
        m_unblock = call.caller.mark()
        lab.remove_table(a.router, block)
        t_unblock = time.monotonic()
        held = t_unblock - t_block
        during = self.relay_timeline(call.caller, marks[0])
        paths = [(p.name, ev["from"], ev["to"], ev["reason"])
                 for p, m in zip(call.peers, marks) for ev in p.events("path", start=m)]
        _out(f"relay unreachable from the caller for {held:.1f}s during a direct call: "
             f"{samples} stats samples, stalls (1 s without a frame) at {stalls or 'none'}; "
             f"path changes {paths or 'none'}\n"
             f"  missing: caller {st[0]['missing']}, callee {st[1]['missing']} (of "
             f"{st[0]['unique']} / {st[1]['unique']} frames)\n"
             f"  caller relay events during the block: {during}\n"
             f"  callee relay events during the block: "
             f"{self.relay_timeline(call.callee, marks[1])}\n  "
             + _fmt_stats("caller", st[0]) + "\n  " + _fmt_stats("callee", st[1]))
        self.assert_not_ended(call.peers)
        self.assertGreaterEqual(held, OUTAGE_S)
        self.assertTrue(any(s != "registered" for s, _, _ in during),
                        "the caller never noticed the relay was unreachable (the block did "
                        "not work?)" + self.ctx())
        self.assertEqual(stalls, [], "frames stopped arriving during the outage" + self.ctx())
        self.assertEqual(paths, [], "the call left the direct path" + self.ctx())
        for name, s in zip(("caller", "callee"), st):
            self.assertEqual(s["path"], D, name + self.ctx())
            self.assertEqual(s["missing"], 0, f"{name}: frames lost" + self.ctx())
        reg = self.wait_registered_again([call.caller], [m_unblock], t_unblock)
        _out(f"  caller registered again {reg[0] * 1000:.0f} ms after the block was lifted "
             f"(relay events: {self.relay_timeline(call.caller, m_unblock)})")
        self.assert_not_ended(call.peers)
        self.hangup_reaches(call.caller, call.callee, "after the outage")


# --------------------------------------------------------------------------------------------
# 3. The relay stays away: the host's no-path timeout

class NoPathTimeoutTest(ResumeCase):
    """A relayed call and a direct call in one lab, all four parties with
    ``--no-path-timeout-ms 3000``; the relay is killed and not restarted."""

    def test_relayed_call_ends_direct_call_stays(self):
        extra = ("--no-path-timeout-ms", str(NO_PATH_TIMEOUT_MS))
        _, _, direct = self.direct_call("d", extra)
        _, _, relayed = self.relayed_call("r", extra)
        self.reset_and_receive(direct.peers)
        dmarks = direct.marks()
        rmarks = relayed.marks()
        ended = {}

        def waiter(p, m):
            try:
                _, ev = p.wait_event("ended", NO_PATH_END_MAX_S + 4, start=m,
                                     fail_on_ended=False)
                ended[p.name] = (time.monotonic(), ev)
            except (TimeoutError, AssertionError, RuntimeError) as e:
                ended[p.name] = (None, str(e).splitlines()[0])

        threads = [threading.Thread(target=waiter, args=(p, m), daemon=True)
                   for p, m in zip(relayed.peers, rmarks)]
        t_kill = self.stop_relay("kill")
        for t in threads:
            t.start()
        # Watch the direct call meanwhile: something new every second, no end.
        stalls = []
        last = direct.stats()
        while time.monotonic() - t_kill < DIRECT_SURVIVES_S:
            met, st = direct.wait_flowing(last, 1.0, key="received")
            if not met:
                stalls.append(round(time.monotonic() - t_kill, 1))
            last = st
        for t in threads:
            t.join(NO_PATH_END_MAX_S + 6)
        dst = direct.stats()
        watched = time.monotonic() - t_kill
        dpaths = [(p.name, ev["from"], ev["to"], ev["reason"])
                  for p, m in zip(direct.peers, dmarks) for ev in p.events("path", start=m)]
        res = []
        for p in relayed.peers:
            t, ev = ended.get(p.name, (None, "waiter did not finish"))
            res.append((p.name, None if t is None else t - t_kill, ev))
        _out("relay killed for good (no-path timeout 3000 ms):\n" + "\n".join(
            f"  relayed {name}: " + (f"ended with error {ev['error']} {dt:.2f}s after the kill"
                                     if dt is not None else f"no ended event: {ev}")
            for name, dt, ev in res)
             + f"\n  direct call: watched {watched:.1f}s after the kill, stalls (1 s without "
             f"a frame) {stalls or 'none'}, path changes {dpaths or 'none'}, ended events "
             f"{[p.events('ended') for p in direct.peers]}\n  "
             + _fmt_stats("caller", dst[0]) + "\n  " + _fmt_stats("callee", dst[1]))
        for name, dt, ev in res:
            self.assertIsNotNone(dt, f"relayed {name}: the call did not end: {ev}" + self.ctx())
            self.assertEqual(ev["error"], ERR_NO_PATH, f"relayed {name}" + self.ctx())
            self.assertGreaterEqual(dt, NO_PATH_END_MIN_S - 0.05,
                                    f"relayed {name} ended before the timeout" + self.ctx())
            self.assertLessEqual(dt, NO_PATH_END_MAX_S, f"relayed {name}" + self.ctx())
        self.assert_not_ended(direct.peers)
        self.assertGreater(watched, 6.0)
        self.assertEqual(stalls, [], "the direct call stopped receiving" + self.ctx())
        for name, s in zip(("caller", "callee"), dst):
            self.assertEqual(s["path"], D, name + self.ctx())
            self.assertGreater(s["unique"], 6 * 50 * 0.9, name + self.ctx())


# --------------------------------------------------------------------------------------------
# 4. A party that dies mid-call

ERR_PEER_UNAVAILABLE = -31  # kErrPeerUnavailable
#: The relay's idle timeout (clients keep alive every 3 s) and how long it keeps a call whose
#: party left, for this test; the default window is 60 s.
GONE_IDLE_MS, GONE_WINDOW_MS = 4000, 2000
GONE_END_MAX_S = (GONE_IDLE_MS + GONE_WINDOW_MS) / 1000 + 3.0


class PeerGoneTest(ResumeCase):
    """A relayed call and a direct call in one lab; both callees are killed (``kill -9``: no
    hangup, as when an app crashes). The relay notices at its idle timeout, keeps each call
    for its ``--left-call-timeout-ms``, then ends it for the caller, who is no longer left in
    a call with nobody (before, it stayed in both calls for good)."""

    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay(extra=("--idle-timeout-ms", str(GONE_IDLE_MS),
                                    "--left-call-timeout-ms", str(GONE_WINDOW_MS)))
        self.relays = [self.env.relay]
        self.parties = []

    def test_a_killed_peer_ends_the_call_for_the_other(self):
        _, _, direct = self.direct_call("d")
        _, _, relayed = self.relayed_call("r")
        marks = [c.caller.mark() for c in (direct, relayed)]
        t_kill = time.monotonic()
        for c in (direct, relayed):
            os.kill(c.callee.proc.pid, signal.SIGKILL)
        res = []
        for c, m in zip((direct, relayed), marks):
            try:
                _, ev = c.caller.wait_event("ended", GONE_END_MAX_S, start=m,
                                            fail_on_ended=False)
            except TimeoutError:
                self.fail(f"{c.tag}: the caller is still in the call {GONE_END_MAX_S}s after "
                          f"its peer was killed" + self.ctx())
            res.append((c.tag, time.monotonic() - t_kill, ev))
        _out("callees killed (relay idle timeout 4 s, left-call timeout 2 s):\n" + "\n".join(
            f"  {tag} call: the caller ended with error {ev['error']} ({ev.get('text', '')!r}) "
            f"{dt:.2f}s after the kill" for tag, dt, ev in res))
        for tag, dt, ev in res:
            self.assertEqual(ev["error"], ERR_PEER_UNAVAILABLE, tag + self.ctx())
            self.assertGreaterEqual(dt, GONE_WINDOW_MS / 1000, tag + self.ctx())


if __name__ == "__main__":
    unittest.main()
