"""Calls between two parley-call-peer processes through parley-relay, behind the lab's NATs.

Needs root and two environment variables (the tests skip, saying which, when unset):

    PARLEY_RELAY       path to parley-relay
    PARLEY_CALL_PEER   path to parley-call-peer (tests/tools/call_peer.cc)

Every test builds its own lab: the server namespace runs ``parley-relay --listen
203.0.113.10:3478 --stun-alt none``; each party is a ``parley-call-peer`` bound to its host's
address, UDP port 40000 (the port the lab's routers pin), streaming numbered frames at 50 fps
each way.  The callee starts first and reports its fingerprint (``ready``); the caller is
started with ``--call`` that fingerprint.  What is checked:

* ``CallMatrixTest`` -- caller NAT type x callee NAT type: the call always works, and it
  ends on the direct path exactly where NAT theory says a direct path exists (``EXPECT``
  below), on the relay everywhere else.  One test method per caller type (a row); the seven
  cells of a row run in parallel, each on its own two sites.
* ``PathSwitchTest`` -- the relay->direct switch loses and duplicates nothing; killing the
  direct path (an nftables drop between the two public addresses) falls back to the relay
  with a media hole of at most ``GAP_TARGET_MS``; lifting it brings the direct path back.
* ``MitmTest`` -- a man in the middle on the caller's router lets the ICE checks reach the
  real callee but diverts the caller's direct QUIC handshake to a host that answers with
  another identity (a second parley-relay): pinning refuses it, the call stays on the relay.
* ``RebindingTest`` -- the router's conntrack table is flushed during a direct call (state
  loss behind a port-preserving NAT, and a real NAT rebinding behind a symmetric one): the
  call survives and frames keep flowing.

Run (as root):
    cd tests/natlab && PARLEY_RELAY=... PARLEY_CALL_PEER=... \\
        /usr/bin/python3 -m unittest -v test_calls
One row:  /usr/bin/python3 run.py test_calls.CallMatrixTest.test_caller_symmetric

No test sleeps to synchronise: everything waits for a line of output (or a stats answer
meeting a condition) against a deadline.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from natlab import (NAT_TYPES, Lab, LabError, lines_of, quic_divert_ruleset, send_line,
                    wait_for_line, wait_for_match, NFT)

RELAY_LISTEN = "203.0.113.10:3478"
HOST_PORT = 40000
FPS = 50
FRAME_MS = 1000 // FPS
BUDGET_MS = 3000            # parley-call-peer --budget-ms (the library's default)
MARGIN_S = 2.0              # on top of the budget, for the last switch to be reported
READY_TIMEOUT = 25.0        # the peer gives up registering after 20 s
ACTIVE_TIMEOUT = 10.0
GAP_TARGET_MS = 300         # the bound on the media hole of a fallback

# Error codes (src/base/error.h) the tests look for in "direct_error".
ERR_TIMEOUT = -19
ERR_PEER_IDENTITY = -23
ERR_ICE_FAILED = -40

D, R = "direct", "relay"
#: The matrix: NAT types of the lab minus "udp-blocked" (no UDP at all: the call could not
#: even reach the relay, which parley only speaks over UDP).
TYPES = ("none", "full-cone", "port-restricted", "symmetric", "double", "same-lan",
         "udp-blocked-to-peer")
SHORT = {"none": "none", "full-cone": "fcone", "port-restricted": "prc", "symmetric": "sym",
         "double": "dbl", "same-lan": "lan", "udp-blocked-to-peer": "ublk"}

# Expected path per (caller type, callee type) -- RFC 4787 behaviour of the lab's routers
# (README.md: "NAT types") and what RFC 8445 ICE can do with it.  ICE runs on both sides, so
# the table is symmetric (checked below).  Why:
#
# * none / full-cone are reachable by anyone at their candidate (no NAT; or endpoint-
#   independent filtering on the pinned port).  Anyone who can send UDP to them gets direct:
#   - a cone (EIM) party's checks create its pinhole toward them, their answers pass it;
#   - a symmetric party's check leaves from a NEW port (its srflx, learnt from the relay, is
#     useless to the peer), but reaches them: the open side learns that port as a
#     peer-reflexive candidate from the check and its triggered check passes the symmetric
#     NAT's pinhole (same 5-tuple): direct via prflx.
# * port-restricted / double / same-lan (one party of a LAN, see below) are EIM + address-
#   and-port-dependent filtering (APDF): between two of them classic hole punching works
#   (each side's checks open its pinhole for the other's srflx: the mapping is the one the
#   relay observed), so direct.
# * symmetric vs any APDF party (port-restricted, double, same-lan, symmetric): the symmetric
#   side's checks leave from a port nobody signalled, and the APDF side only accepts packets
#   from addresses it has sent to; the APDF side's checks go to the symmetric side's srflx
#   (its mapping toward the relay), which the symmetric NAT filters.  No pair can validate:
#   relay.
# * udp-blocked-to-peer: its router drops UDP between the two parties' public addresses
#   (but not to the relay): nothing direct can work, relay, whatever the other side is.
# * same-lan: "both parties behind ONE NAT on the same LAN" is a single configuration: the
#   diagonal cell (caller 10.0.k.2, callee 10.0.k.3 on one port-restricted LAN) -- direct
#   through the host candidates (the router does not hairpin, so the srflx pairs fail).
#   Off the diagonal the same-lan party is the SECOND host of such a LAN (pinned to public
#   port 40001: its port is not preserved; the first host idles) calling / called by a party
#   elsewhere: behaves as port-restricted.
#
#                         callee: none fcone prc  sym  dbl  lan  ublk
EXPECT = {
    "none":                (D,    D,    D,   D,   D,   D,   R),
    "full-cone":           (D,    D,    D,   D,   D,   D,   R),
    "port-restricted":     (D,    D,    D,   R,   D,   D,   R),
    "symmetric":           (D,    D,    R,   R,   R,   R,   R),
    "double":              (D,    D,    D,   R,   D,   D,   R),
    "same-lan":            (D,    D,    D,   R,   D,   D,   R),
    "udp-blocked-to-peer": (R,    R,    R,   R,   R,   R,   R),
}
assert set(TYPES) <= set(NAT_TYPES)
assert all(EXPECT[a][j] == EXPECT[b][i] for i, a in enumerate(TYPES)
           for j, b in enumerate(TYPES)), "EXPECT must be symmetric"


def _binary(var, name):
    path = os.environ.get(var)
    if not path:
        raise unittest.SkipTest(f"{var} is not set (it must name the {name} executable)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise unittest.SkipTest(f"{var}={path} is not an executable file")
    return path


def _tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------------------------
# The processes

class Relay:
    """parley-relay in a lab namespace; ``fp`` and ``addr`` from its startup lines."""

    def __init__(self, lab, node, binary, seed, listen=RELAY_LISTEN, extra=()):
        self.lab = lab
        argv = [binary, "--listen", listen, "--seed", seed, "--stun-alt", "none",
                "--log-level", "warn", *extra]
        self.proc = lab.spawn(node, argv)
        self.fp = wait_for_line(self.proc, r"^fingerprint ([0-9a-f]{64})$", 10).group(1)
        self.addr = wait_for_line(self.proc, r"^listening quic\+stun (\S+)", 10).group(1)


class PeerEnded(AssertionError):
    """The call ended (an "ended" event) while a test waited for something else."""


class Peer:
    """One parley-call-peer: its JSON-lines events and its stdin commands."""

    def __init__(self, lab, node, binary, relay, seed, *, name, call=None, fps=FPS,
                 budget_ms=BUDGET_MS, extra=(), log_level="info", bind=None):
        self.lab, self.node, self.name = lab, node, name
        # An IPv6 one is "[ip6]:port"; "default": none, the library's dual-stack default.
        bind = bind or f"{node.ip}:{HOST_PORT}"
        argv = [binary, "--seed", seed, "--relay", relay.addr, "--relay-fp", relay.fp,
                *(("--bind", bind) if bind != "default" else ()), "--fps", str(fps),
                "--budget-ms", str(budget_ms), "--log-level", log_level, *extra]
        if call:
            argv += ["--call", call]
        self.argv = argv
        self.proc = lab.spawn(node, argv, stdin=True)
        self._answers = {}          # command -> index after its last answer line
        self.fp = None

    # -- events ------------------------------------------------------------------------------

    @staticmethod
    def _parse(line):
        if not line.startswith("{"):
            return None
        try:
            ev = json.loads(line)
        except ValueError:
            return None
        return ev if isinstance(ev, dict) else None

    def events(self, kind=None, start=0):
        out = []
        for line in lines_of(self.proc)[start:]:
            ev = self._parse(line)
            if ev is not None and (kind is None or ev.get("ev") == kind):
                out.append(ev)
        return out

    def mark(self):
        """The index of the next output line (for waits on what happens from now on)."""
        return len(lines_of(self.proc))

    def wait_event(self, kind, timeout, pred=None, start=0, fail_on_ended=True):
        """The first ``kind`` event at line ``start`` or later (matching ``pred``)."""
        def match(line):
            ev = self._parse(line)
            if ev is None:
                return None
            if fail_on_ended and ev.get("ev") == "ended" and kind != "ended":
                return {"ev": "__ended__", "error": ev.get("error")}
            if ev.get("ev") == kind and (pred is None or pred(ev)):
                return ev
            return None
        match.__name__ = f"{kind} event"
        idx, ev = wait_for_match(self.proc, match, timeout, start=start)
        if ev.get("ev") == "__ended__":
            raise PeerEnded(f"{self.name}: the call ended (error {ev['error']}) while waiting "
                            f"for a {kind} event\n{self.describe()}")
        return idx, ev

    def wait_ready(self, timeout=READY_TIMEOUT):
        _, ev = self.wait_event("ready", timeout)
        self.fp = ev["fp"]
        return ev

    # -- commands ------------------------------------------------------------------------------

    def _command(self, cmd, answer, timeout):
        start = max(self._answers.get(cmd, 0), 0)
        send_line(self.proc, cmd)
        idx, ev = self.wait_event(answer, timeout, start=start, fail_on_ended=False)
        self._answers[cmd] = idx + 1
        return ev

    def stats(self, timeout=5.0):
        return self._command("stats", "stats", timeout)

    def reset(self, timeout=5.0):
        return self._command("reset", "reset", timeout)

    def network_changed(self, timeout=5.0):
        """The host's network_changed(); the answer event."""
        return self._command("network-changed", "network-changed", timeout)

    def quit(self, timeout=5.0):
        """Ask it to quit (it hangs up and closes its relay connection), then reap it."""
        if self.proc.poll() is None:
            try:
                send_line(self.proc, "quit")
                self.proc.wait(timeout=timeout)
            except (LabError, subprocess.TimeoutExpired):
                pass                        # Lab.stop below: SIGTERM, then SIGKILL
        self.lab.stop(self.proc)

    def describe(self, n=40):
        out, err = lines_of(self.proc), lines_of(self.proc, "stderr")
        return (f"--- {self.name} ({self.node.ns}) stdout ---\n" + "\n".join(out[-n:]) +
                f"\n--- {self.name} stderr (last {n}) ---\n" + "\n".join(err[-n:]))


class Call:
    """A callee and a caller in a lab, with a relay already running."""

    def __init__(self, env, caller_node, callee_node, tag, *, caller_extra=(),
                 callee_extra=(), fps=FPS, budget_ms=BUDGET_MS, log_level="info",
                 caller_bind=None, callee_bind=None):
        self.env, self.tag = env, tag
        self.caller_node, self.callee_node = caller_node, callee_node
        self.kw = dict(fps=fps, budget_ms=budget_ms, log_level=log_level)
        self.caller_extra, self.callee_extra = caller_extra, callee_extra
        self.caller_bind, self.callee_bind = caller_bind, callee_bind
        self.callee = self.caller = None
        self.active_at = None

    def start(self):
        env = self.env
        self.callee = Peer(env.lab, self.callee_node, env.peer_bin, env.relay,
                           env.seed(f"{self.tag}-callee"), name=f"{self.tag} callee",
                           extra=self.callee_extra, bind=self.callee_bind, **self.kw)
        self.callee.wait_ready()
        self.caller = Peer(env.lab, self.caller_node, env.peer_bin, env.relay,
                           env.seed(f"{self.tag}-caller"), name=f"{self.tag} caller",
                           call=self.callee.fp, extra=self.caller_extra,
                           bind=self.caller_bind, **self.kw)
        self.caller.wait_ready()
        self.caller.wait_event("active", ACTIVE_TIMEOUT)
        self.callee.wait_event("active", ACTIVE_TIMEOUT)
        self.active_at = time.monotonic()
        return self

    @property
    def peers(self):
        return (self.caller, self.callee)

    def remaining(self, total):
        return max(0.1, total - (time.monotonic() - self.active_at))

    def wait_path(self, to, timeout, start=(0, 0)):
        """Both sides report a switch to ``to`` (line index ``start`` or later); the events."""
        deadline = time.monotonic() + timeout
        evs = []
        for p, s in zip(self.peers, start):
            _, ev = p.wait_event("path", max(0.05, deadline - time.monotonic()),
                                 pred=lambda e: e.get("to") == to, start=s)
            evs.append(ev)
        return evs

    def marks(self):
        return tuple(p.mark() for p in self.peers)

    def stats(self):
        return tuple(p.stats() for p in self.peers)

    def poll_stats(self, cond, timeout, pace=0.05):
        """Query both sides' stats until ``cond(caller_stats, callee_stats)`` or the deadline.

        (``pace`` only spaces the queries -- load shaping, not synchronisation: every answer
        is waited for.)  Returns ``(met, stats)``.
        """
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if cond(*st):
                return True, st
            if time.monotonic() >= deadline:
                return False, st
            time.sleep(pace)

    def wait_flowing(self, before, timeout=3.0, key="unique"):
        """Wait until ``key`` grew on both sides past ``before``; (met, stats)."""
        return self.poll_stats(lambda a, b: a[key] > before[0][key] and b[key] > before[1][key],
                               timeout)

    def describe(self):
        return "\n".join(p.describe() for p in self.peers if p is not None)

    def close(self):
        for p in self.peers:
            if p is not None:
                p.quit()


class CallEnv:
    """Per-test fixture: a lab with the server running parley-relay, and a seed directory."""

    def __init__(self, test, ipv6=False):
        self.relay_bin = _binary("PARLEY_RELAY", "parley-relay")
        self.peer_bin = _binary("PARLEY_CALL_PEER", "parley-call-peer")
        self.tmp = tempfile.mkdtemp(prefix="parley-calls-")
        test.addCleanup(shutil.rmtree, self.tmp, True)
        self.lab = Lab()
        test.addCleanup(self.lab.close)
        self.lab.start()
        self.server = self.lab.add_server(ipv6=ipv6)
        self.relay = None

    def start_relay(self, extra=()):
        self.relay = Relay(self.lab, self.server, self.relay_bin, self.seed("relay"),
                           extra=extra)
        return self.relay

    def seed(self, name):
        return os.path.join(self.tmp, f"{name}.seed")

    def call(self, caller_node, callee_node, tag, **kw):
        return Call(self, caller_node, callee_node, tag, **kw)


def _fmt_stats(name, s):
    keys = ("path", "received", "unique", "duplicates", "missing", "max_missing_run",
            "max_gap_ms", "via_relay", "via_direct", "sent_relay", "sent_direct",
            "dropped_duplicates", "time_to_direct_ms", "local", "remote", "direct_error")
    return f"{name}: " + ", ".join(f"{k}={s.get(k)}" for k in keys)


# --------------------------------------------------------------------------------------------
# 1. The NAT matrix

_MATRIX = {}            # (caller type, callee type) -> result dict (printed at the end)
_MATRIX_LOCK = threading.Lock()


def _cell_text(r):
    if r is None:
        return "-"
    if r.get("error") and r.get("path") is None:
        return "ERROR"
    mark = "" if r["ok"] else "!"
    if r["path"] == D:
        return f"{mark}D {r['ttd']}ms"
    return f"{mark}R"


def format_matrix(results, rows=TYPES):
    """The matrix table: rows caller type, columns callee type; 'D 312ms' = direct after
    312 ms (time_to_direct_ms, the later side), 'R' = relay, '!' = not what EXPECT says."""
    w = 12
    head = "caller \\ callee".ljust(22) + "".join(SHORT[t].rjust(w) for t in TYPES)
    out = [head]
    for a in rows:
        cells = [_cell_text(results.get((a, b))).rjust(w) for b in TYPES]
        out.append(a.ljust(22) + "".join(cells))
    return "\n".join(out)


class CallMatrixTest(unittest.TestCase):
    """Caller NAT type x callee NAT type; one test per caller type (row)."""

    maxDiff = None

    @classmethod
    def tearDownClass(cls):
        if _MATRIX:
            rows = [t for t in TYPES if any((t, b) in _MATRIX for b in TYPES)]
            print("\nCall matrix (D = direct, time to direct; R = relay; ! = unexpected):\n"
                  + format_matrix(_MATRIX, rows), file=sys.stderr)

    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay()

    def build_cell(self, j, caller_type, callee_type):
        """Sites for one cell; returns (caller node, callee node)."""
        lab = self.env.lab
        if caller_type == callee_type == "same-lan":
            site = lab.add_site(f"c{j}", "same-lan")
            return site.hosts[0], site.hosts[1]

        def party(site):
            return site.hosts[1] if site.nat == "same-lan" else site.host

        kw = {}
        if caller_type == "udp-blocked-to-peer":
            kw["blocked_peers"] = [lab.next_site_public_ip(ahead=1)]   # the callee's site
        a = lab.add_site(f"c{j}a", caller_type, **kw)
        kw = {}
        if callee_type == "udp-blocked-to-peer":
            kw["blocked_peers"] = [a.public_ip]
        b = lab.add_site(f"c{j}b", callee_type, **kw)
        if caller_type == "udp-blocked-to-peer":
            assert a.blocked_peers == (b.public_ip,), (a.blocked_peers, b.public_ip)
        return party(a), party(b)

    def run_cell(self, caller_type, callee_type, caller_node, callee_node, j):
        expect = EXPECT[caller_type][TYPES.index(callee_type)]
        call = self.env.call(caller_node, callee_node, f"c{j}")
        r = {"expect": expect, "path": None, "ttd": None, "ok": False, "error": None,
             "problems": [], "call": call}
        t0 = time.monotonic()
        try:
            call.start()
            window = BUDGET_MS / 1000 + MARGIN_S
            if expect == D:
                try:
                    call.wait_path(D, call.remaining(window))
                except TimeoutError:
                    r["problems"].append(f"no path->direct event on both sides within "
                                         f"{window:.1f}s of active")
            else:
                # The direct attempt is over once both sides report why there is none
                # (direct_error), at the latest when the budget runs out.
                met, _ = call.poll_stats(
                    lambda a, b: a["direct_error"] != 0 and b["direct_error"] != 0,
                    call.remaining(window))
                if not met:
                    r["problems"].append(f"direct_error still 0 on a side {window:.1f}s "
                                         f"after active")
            s1 = call.stats()
            met, s2 = call.wait_flowing(s1)
            if not met:
                r["problems"].append("frames stopped flowing (unique did not grow within 3 s)")
            for name, a, b in zip(("caller", "callee"), s1, s2):
                if a["received"] <= 0:
                    r["problems"].append(f"{name} received no frame")
                if a["duplicates"]:
                    r["problems"].append(f"{name} got {a['duplicates']} duplicate frames")
            paths = {s["path"] for s in s2}
            r["path"] = paths.pop() if len(paths) == 1 else "split:" + "/".join(
                s["path"] for s in s2)
            ttds = [s["time_to_direct_ms"] for s in s2]
            r["ttd"] = max(ttds) if all(t >= 0 for t in ttds) else None
            r["stats"] = s2
            if r["path"] != expect:
                r["problems"].append(f"path {r['path']}, expected {expect}")
            key = "via_direct" if expect == D else "via_relay"
            for name, a, b in zip(("caller", "callee"), s1, s2):
                if met and b[key] <= a[key]:
                    r["problems"].append(f"{name}: no new frame via {expect} ({key} "
                                         f"{a[key]} -> {b[key]})")
            direct_events = [ev for p in call.peers for ev in p.events("path")
                             if ev.get("to") == D]
            if expect == R and direct_events:
                r["problems"].append(f"path->direct events on a relay cell: {direct_events}")
            if expect == D and r["path"] == D:
                self.check_candidates(caller_type, callee_type, s2, r)
        except (TimeoutError, LabError, AssertionError) as e:
            r["error"] = str(e)
        finally:
            r["seconds"] = time.monotonic() - t0
            r["ok"] = r["error"] is None and not r["problems"]
            call.close()
        return r

    @staticmethod
    def check_candidates(caller_type, callee_type, st, r):
        """The selected pair is the one the theory predicts, where it is unique."""
        caller, callee = st
        if caller_type == callee_type == "same-lan":
            for name, s in (("caller", caller), ("callee", callee)):
                if not (s["local"].startswith("host ") and s["remote"].startswith("host ")):
                    r["problems"].append(f"same LAN: {name} pair {s['local']} -> "
                                         f"{s['remote']}, expected host -> host")
        # Open side vs symmetric: the symmetric side's address can only be learnt from its
        # checks (peer-reflexive).
        for me, other, s in (("caller", callee_type, caller), ("callee", caller_type, callee)):
            mine = caller_type if me == "caller" else callee_type
            if other == "symmetric" and mine in ("none", "full-cone"):
                if not s["remote"].startswith("prflx "):
                    r["problems"].append(f"{me} ({mine}) vs symmetric: remote candidate "
                                         f"{s['remote']!r}, expected prflx")

    def run_row(self, caller_type):
        lab = self.env.lab
        t0 = time.monotonic()
        nodes = [self.build_cell(j, caller_type, b) for j, b in enumerate(TYPES)]
        t_built = time.monotonic()
        results = [None] * len(TYPES)

        def worker(j):
            results[j] = self.run_cell(caller_type, TYPES[j], *nodes[j], j)

        threads = [threading.Thread(target=worker, args=(j,), daemon=True)
                   for j in range(len(TYPES))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        t_done = time.monotonic()
        row = {}
        failures = []
        for j, b in enumerate(TYPES):
            r = results[j]
            if r is None:
                failures.append(f"{caller_type} -> {b}: the cell did not finish in 120 s")
                continue
            row[(caller_type, b)] = r
            if not r["ok"]:
                detail = "; ".join(r["problems"]) or "error"
                text = (f"{caller_type} -> {b}: {detail}\n")
                if r["error"]:
                    text += f"  error: {_tail(r['error'], 60)}\n"
                if r.get("stats"):
                    text += "  " + _fmt_stats("caller", r["stats"][0]) + "\n"
                    text += "  " + _fmt_stats("callee", r["stats"][1]) + "\n"
                text += _tail(r["call"].describe(), 80)
                failures.append(text)
        with _MATRIX_LOCK:
            _MATRIX.update(row)
        table = format_matrix(row, [caller_type])
        def describe_cell(b, r):
            text = (f"  {caller_type} -> {b}: {r['path']} (expected {r['expect']}), "
                    f"cell {r['seconds']:.1f}s")
            st = r.get("stats")
            if not st:
                return text
            if r["path"] == D:
                return (text + f", time to direct {r['ttd']} ms, caller's pair "
                        f"{st[0]['local']} -> {st[0]['remote']}")
            return (text + f", direct_error caller {st[0]['direct_error']} callee "
                    f"{st[1]['direct_error']}")

        detail = "\n".join(describe_cell(b, r) for (_, b), r in row.items())
        print(f"\nrow {caller_type}: lab built in {t_built - t0:.1f}s, cells in "
              f"{t_done - t_built:.1f}s\n{table}\n{detail}", file=sys.stderr)
        if failures:
            self.fail(f"{len(failures)} cell(s) of row {caller_type} failed:\n\n"
                      + "\n\n".join(failures) + "\n\n" + lab.describe())

    def test_caller_none(self):
        self.run_row("none")

    def test_caller_full_cone(self):
        self.run_row("full-cone")

    def test_caller_port_restricted(self):
        self.run_row("port-restricted")

    def test_caller_symmetric(self):
        self.run_row("symmetric")

    def test_caller_double(self):
        self.run_row("double")

    def test_caller_same_lan(self):
        self.run_row("same-lan")

    def test_caller_udp_blocked_to_peer(self):
        self.run_row("udp-blocked-to-peer")


# --------------------------------------------------------------------------------------------
# 2. Switch, fallback and recovery

class PathSwitchTest(unittest.TestCase):
    """Both parties port-restricted, 50 fps each way."""

    maxDiff = None

    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay()
        lab = self.env.lab
        self.a = lab.add_site("a", "port-restricted")
        self.b = lab.add_site("b", "port-restricted")

    def test_switch_fallback_recovery(self):
        lab = self.env.lab
        call = self.env.call(self.a.host, self.b.host, "sw").start()
        self.addCleanup(call.close)
        ctx = lambda: "\n" + call.describe() + "\n" + lab.describe()   # noqa: E731

        # -- the switch: nothing lost, nothing twice
        t0 = time.monotonic()
        evs = call.wait_path(D, call.remaining(BUDGET_MS / 1000 + MARGIN_S))
        for ev in evs:
            self.assertEqual(ev["reason"], "direct-verified", ctx())
        # Frames that were in flight on the relay when the direct copy overtook them arrive
        # a moment later; a frame really lost stays missing.  So: the first answer with
        # missing == 0 after some frames went direct, within 2 s.
        met, st = call.poll_stats(
            lambda a, b: all(s["via_direct"] >= 10 and s["missing"] == 0 for s in (a, b)),
            2.0)
        print(f"\nswitch: path->direct {time.monotonic() - t0:.2f}s after waiting began; "
              f"time_to_direct_ms caller {st[0]['time_to_direct_ms']}, callee "
              f"{st[1]['time_to_direct_ms']}\n  " + _fmt_stats("caller", st[0]) + "\n  "
              + _fmt_stats("callee", st[1]), file=sys.stderr)
        for name, s in zip(("caller", "callee"), st):
            self.assertEqual(s["path"], D, name + ctx())
            self.assertEqual(s["missing"], 0, f"{name}: frames lost over the switch" + ctx())
            self.assertEqual(s["duplicates"], 0,
                             f"{name}: frames delivered twice over the switch" + ctx())
            # Media started on the relay: its copies arrived first, or (the direct path up
            # within a few frames, dual-sent) as the duplicates of direct copies that
            # overtook them.
            self.assertGreater(s["via_relay"] + s["dropped_duplicates"], 0, name + ctx())
            self.assertGreaterEqual(s["via_direct"], 10, name + ctx())

        # -- kill the direct path (not the relay): fall back within the target
        # reset, then let direct frames arrive first: the hole must be measured from the
        # last frame before the block (max_gap_ms and the missing run only see frames
        # received since the reset).
        for p in call.peers:
            p.reset()
        met, st = call.poll_stats(
            lambda a, b: a["via_direct"] >= 5 and b["via_direct"] >= 5, 2.0)
        self.assertTrue(met, "no direct frames after the reset" + ctx())
        marks = call.marks()
        block = lab.block_udp(self.a.router, [self.b.public_ip])
        t_block = time.monotonic()
        try:
            evs = call.wait_path(R, 5.0, start=marks)
        except TimeoutError as e:
            self.fail(f"no path->relay event within 5 s of blocking the direct path: {e}")
        t_fallback = time.monotonic() - t_block
        for ev in evs:
            self.assertIn(ev["reason"], ("direct-lost", "peer-fallback"), ctx())
        before = call.stats()
        met, st = call.wait_flowing(before, 3.0, key="received")
        self.assertTrue(met, "frames did not resume over the relay" + ctx())
        gaps = [(s["max_gap_ms"], s["max_missing_run"] * FRAME_MS) for s in st]
        print(f"fallback: path->relay events {t_fallback * 1000:.0f} ms after the block, "
              f"reasons {[ev['reason'] for ev in evs]}\n"
              f"  caller: max_gap_ms {gaps[0][0]}, max_missing_run {st[0]['max_missing_run']} "
              f"x {FRAME_MS} ms = {gaps[0][1]} ms\n"
              f"  callee: max_gap_ms {gaps[1][0]}, max_missing_run {st[1]['max_missing_run']} "
              f"x {FRAME_MS} ms = {gaps[1][1]} ms\n  " + _fmt_stats("caller", st[0]) + "\n  "
              + _fmt_stats("callee", st[1]), file=sys.stderr)
        for name, (gap, run_ms), s in zip(("caller", "callee"), gaps, st):
            self.assertEqual(s["path"], R, name + ctx())
            self.assertLessEqual(gap, GAP_TARGET_MS,
                                 f"{name}: media hole {gap} ms > {GAP_TARGET_MS} ms" + ctx())
            self.assertLessEqual(run_ms, GAP_TARGET_MS,
                                 f"{name}: {s['max_missing_run']} frames in a row lost "
                                 f"(> {GAP_TARGET_MS} ms)" + ctx())
            self.assertEqual(s["duplicates"], 0, name + ctx())

        # -- lift the block: the direct path comes back
        marks = call.marks()
        lab.remove_table(self.a.router, block)
        t_lift = time.monotonic()
        try:
            evs = call.wait_path(D, 20.0, start=marks)
        except TimeoutError as e:
            self.fail(f"the direct path did not come back within 20 s of lifting the "
                      f"block: {e}")
        t_recover = time.monotonic() - t_lift
        before = call.stats()
        met, st = call.wait_flowing(before, 3.0, key="via_direct")
        print(f"recovery: path->direct {t_recover * 1000:.0f} ms after lifting the block, "
              f"reasons {[ev['reason'] for ev in evs]}\n  " + _fmt_stats("caller", st[0])
              + "\n  " + _fmt_stats("callee", st[1]), file=sys.stderr)
        self.assertTrue(met, "no frames over the recovered direct path" + ctx())
        for name, s in zip(("caller", "callee"), st):
            self.assertEqual(s["path"], D, name + ctx())
            self.assertEqual(s["duplicates"], 0, name + ctx())
        for p in call.peers:
            self.assertEqual(p.events("ended"), [], p.name + ctx())


# --------------------------------------------------------------------------------------------
# 3. A man in the middle

MALLORY_PORT = 4433


class SlowDirectPathTest(unittest.TestCase):
    """The direct path slower than the relay in one direction (the lab's delay line on the
    caller's uplink toward the callee, 300 ms; the relay stays near): the relay's copy of
    each of the caller's frames arrives first, and the direct copy is a duplicate."""

    def test_a_direct_path_slower_than_the_relay_one_way_still_switches_both_ways(self):
        env = CallEnv(self)
        env.start_relay()
        a = env.lab.add_site("a", "port-restricted")
        b = env.lab.add_site("b", "port-restricted")
        env.lab.delay_toward(a.host, b.public_ip, 300)
        call = env.call(a.host, b.host, "slow").start()
        self.addCleanup(call.close)
        # Before the fix the callee never confirmed the caller's switch (it saw the caller's
        # direct frames only as duplicates) and the caller fell back after the 3 s confirm
        # timeout, again and again.
        met, st = call.poll_stats(lambda x, y: x["path"] == D and y["path"] == D,
                                  BUDGET_MS / 1000 + MARGIN_S)
        print(f"\n300 ms one way on the direct path: caller {st[0]['path']} after "
              f"{st[0]['time_to_direct_ms']} ms, callee {st[1]['path']} after "
              f"{st[1]['time_to_direct_ms']} ms", file=sys.stderr)
        self.assertTrue(met, "\n" + call.describe())


class MitmTest(unittest.TestCase):
    """Mallory controls the caller's router.

    The lab: Alice (caller) and Bob (callee), both port-restricted; Mallory is a public host
    running a second parley-relay -- a real parley QUIC server with its own Ed25519 identity
    that accepts any client.  Alice's router lets every STUN packet (ICE checks, consent)
    through to Bob untouched, so ICE really succeeds with Bob, but diverts every QUIC packet
    Alice sends to Bob's address (RFC 7983: first byte >= 64) to Mallory and makes Mallory's
    answers look like Bob's (``natlab.quic_divert_ruleset``).  Alice dials "Bob" with Bob's
    fingerprint pinned and Mallory's certificate comes back: the handshake must fail, no
    direct path may come up, the call stays on the relay with frames flowing.

    (Not covered: an impostor dialing Bob from Alice's validated address -- the callee-side
    pin; that needs a peer that dials with a foreign identity, which the tools lack.  An
    impostor that merely receives the ICE checks cannot answer them: it does not know the
    call's ICE password, so it is indistinguishable from a black hole.)
    """

    maxDiff = None

    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay()
        lab = self.env.lab
        self.a = lab.add_site("alice", "port-restricted")
        self.b = lab.add_site("bob", "port-restricted")
        self.mallory = lab.add_public_host("mallory")

    def divert_counters(self):
        cp = self.env.lab.run(self.a.router, [NFT, "list", "table", "ip", "mitm"], timeout=5)
        return [int(n) for n in re.findall(r"counter packets (\d+)", cp.stdout)]

    def test_pinning_refuses_another_identity(self):
        env, lab = self.env, self.env.lab
        mal = Relay(lab, self.mallory, env.relay_bin, env.seed("mallory"),
                    listen=f"{self.mallory.ip}:{MALLORY_PORT}")
        self.assertNotEqual(mal.fp, env.relay.fp)
        rules = quic_divert_ruleset(lan_ip=self.a.host.ip, port=HOST_PORT,
                                    wan_ip=self.a.public_ip, peer_ip=self.b.public_ip,
                                    peer_port=self.b.public_port(), to_ip=self.mallory.ip,
                                    to_port=MALLORY_PORT)
        # Count what is diverted (both directions): the proof that Mallory was reached.
        rules = rules.replace(" notrack ", " counter notrack ")
        lab.add_table(self.a.router, "mitm", rules)

        call = env.call(self.a.host, self.b.host, "mitm").start()
        self.addCleanup(call.close)
        ctx = lambda: ("\n" + call.describe() + "\n--- mallory ---\n"   # noqa: E731
                       + "\n".join(lines_of(mal.proc, "stderr")[-20:]) + "\n" + lab.describe())
        window = BUDGET_MS / 1000 + MARGIN_S
        met, st = call.poll_stats(
            lambda a, b: a["direct_error"] != 0 and b["direct_error"] != 0,
            call.remaining(window))
        counters = self.divert_counters()
        before = call.stats()
        flowing, after = call.wait_flowing(before, 3.0)
        print(f"\nmitm: diverted packets (to Mallory, from Mallory) = {counters}; "
              f"direct_error caller {st[0]['direct_error']}, callee {st[1]['direct_error']}\n  "
              + _fmt_stats("caller", after[0]) + "\n  " + _fmt_stats("callee", after[1]),
              file=sys.stderr)
        self.assertTrue(met, f"direct_error still 0 on a side {window}s after active" + ctx())
        self.assertEqual(len(counters), 2, counters)
        self.assertGreater(counters[0], 0, "no QUIC packet was diverted to Mallory (did ICE "
                                           "select another address?)" + ctx())
        self.assertGreater(counters[1], 0, "Mallory never answered the handshake" + ctx())
        self.assertEqual(st[0]["direct_error"], ERR_PEER_IDENTITY,
                         "the caller's direct attempt should fail on the pinned identity "
                         "(kErrPeerIdentity)" + ctx())
        for name, p, s in zip(("caller", "callee"), call.peers, after):
            self.assertEqual([ev for ev in p.events("path") if ev.get("to") == D], [],
                             f"{name}: a direct path came up through the MITM" + ctx())
            self.assertEqual(s["path"], R, name + ctx())
            self.assertEqual(s["via_direct"], 0, name + ctx())
            self.assertEqual(s["sent_direct"], 0, name + ctx())
            self.assertNotEqual(s["direct_error"], 0, name + ctx())
            self.assertEqual(p.events("ended"), [], name + ctx())
        self.assertTrue(flowing, "frames stopped flowing over the relay" + ctx())


# --------------------------------------------------------------------------------------------
# 4. NAT rebinding / conntrack loss

class RebindingTest(unittest.TestCase):
    """A router forgets its conntrack table in the middle of a direct call."""

    maxDiff = None
    # Watch the call this long after the flush (> one 3 s keep-alive).  ICE consent
    # (RFC 7675) expires 30 s after the last answered consent check, so what a rebinding
    # does to the direct path in the long run shows only with PARLEY_REBIND_OBSERVE_S=40.
    OBSERVE_S = float(os.environ.get("PARLEY_REBIND_OBSERVE_S", "5"))
    RECOVER_S = 10.0         # if it fell back: wait this long for the direct path again

    def setUp(self):
        self.env = CallEnv(self)
        self.env.start_relay()

    def flush_during_call(self, caller_site, callee_site, router, label):
        env, lab = self.env, self.env.lab
        call = env.call(caller_site.host, callee_site.host, "rb").start()
        self.addCleanup(call.close)
        ctx = lambda: "\n" + call.describe() + "\n" + lab.describe()   # noqa: E731
        call.wait_path(D, call.remaining(BUDGET_MS / 1000 + MARGIN_S))
        st0 = call.stats()
        for p in call.peers:
            p.reset()
        marks = call.marks()
        ct_before = lab.conntrack(router)
        n = lab.flush_conntrack(router)
        t_flush = time.monotonic()
        # Watch: every 250 ms both sides must have received something new, no "ended".
        samples = []
        last = call.stats()
        stalls = []
        while time.monotonic() - t_flush < self.OBSERVE_S:
            met, st = call.wait_flowing(last, 1.0, key="received")
            samples.append((round(time.monotonic() - t_flush, 2), st[0]["path"], st[1]["path"],
                            st[0]["received"], st[1]["received"]))
            if not met:
                stalls.append(samples[-1])
            last = st
            for p in call.peers:
                if p.events("ended", start=0):
                    self.fail(f"{label}: the call ended after the conntrack flush" + ctx())
        changes = [(p.name, ev["from"], ev["to"], ev["reason"], ev["t"])
                   for p, m in zip(call.peers, marks) for ev in p.events("path", start=m)]
        fell_back = any(c[2] == R for c in changes)
        if not fell_back:
            outcome = "stayed direct"
        elif samples[-1][1] == D and samples[-1][2] == D:
            outcome = "fell back to the relay and came back to direct while observed"
        else:
            # Still on the relay: does the direct path come back?
            starts = tuple(p.mark() for p in call.peers)
            t_wait = time.monotonic()
            try:
                call.wait_path(D, self.RECOVER_S, start=starts)
                outcome = (f"fell back to the relay, back on direct "
                           f"{time.monotonic() - t_flush:.1f}s after the flush")
            except TimeoutError:
                outcome = (f"fell back to the relay and stayed there "
                           f"({self.OBSERVE_S + time.monotonic() - t_wait:.0f}s observed)")
        timeline = [smp[:3] for k, smp in enumerate(samples)
                    if k == 0 or smp[1:3] != samples[k - 1][1:3]]
        final = call.stats()
        ct_after = lab.conntrack(router)
        print(f"\n{label}: flushed {n} conntrack entries of {router.name}\n"
              f"  path changes after the flush: {changes or 'none'}\n"
              f"  outcome: {outcome}\n"
              f"  {len(samples)} stats samples over {self.OBSERVE_S:.0f}s, path timeline "
              f"(s after the flush, caller, callee): {timeline}\n  "
              + _fmt_stats("caller", final[0]) + "\n  "
              + _fmt_stats("callee", final[1])
              + f"\n  before: {st0[0]['local']} -> {st0[0]['remote']}"
              + f"\n  conntrack before:\n    " + ct_before.strip().replace("\n", "\n    ")
              + f"\n  conntrack after:\n    " + ct_after.strip().replace("\n", "\n    "),
              file=sys.stderr)
        for p in call.peers:
            self.assertEqual(p.events("ended"), [], f"{label}: {p.name}" + ctx())
        self.assertEqual(stalls, [], f"{label}: frames stopped arriving (1 s without a new "
                                     f"frame) after the flush" + ctx())
        for name, s in zip(("caller", "callee"), final):
            self.assertGreater(s["received"], 0, name + ctx())
        return call, changes, outcome

    def test_state_loss_port_restricted(self):
        """Both port-restricted; the caller's router forgets its state.  The pinned mapping
        comes back identical with the next outgoing packet (only packets arriving before
        that are dropped as 'new'): the call should not even notice."""
        lab = self.env.lab
        a = lab.add_site("a", "port-restricted")
        b = lab.add_site("b", "port-restricted")
        self.flush_during_call(a, b, a.router, "port-restricted state loss")

    def test_rebinding_symmetric_caller(self):
        """Caller behind a symmetric NAT, callee on the open internet (direct via prflx).
        After the flush every flow of the caller -- to the callee AND to the relay -- gets a
        new random public port: a NAT rebinding of the QUIC client side."""
        lab = self.env.lab
        a = lab.add_site("a", "symmetric")
        b = lab.add_site("b", "none")
        self.flush_during_call(a, b, a.router, "symmetric caller rebinding")

    def test_rebinding_symmetric_callee(self):
        """The same with the roles swapped: the rebinding side is the callee (the direct
        QUIC connection's server side)."""
        lab = self.env.lab
        a = lab.add_site("a", "none")
        b = lab.add_site("b", "symmetric")
        self.flush_during_call(a, b, b.router, "symmetric callee rebinding")


if __name__ == "__main__":
    unittest.main()
