"""NAT lab: a small internet built from Linux network namespaces, for parley's tests.

One ``Lab`` owns a set of network namespaces that share a per-run prefix
(``nl<pid>x<n>-``).  They form:

* an *internet* namespace holding the bridge ``pub`` -- the public segment
  203.0.113.0/24 (RFC 5737 documentation range).  It has no address and no
  link to the root namespace, so no lab packet can ever leave the lab;
* public hosts (``add_server``/``add_public_host``) -- one namespace each, with
  ``eth0`` on the public segment and one or more public addresses;
* NAT *sites* (``add_site``) -- one router namespace per NAT layer (WAN
  ``wan0`` on the public segment or on the next router's LAN, LAN bridge
  ``lan0``) and one namespace per LAN host (``eth0``).  The router behaviour is
  an nftables ruleset chosen by the site's NAT type (see ``nft_ruleset`` and
  README.md).

IPv6 is opt-in (every namespace of the IPv4 lab has IPv6 disabled): ``add_server(ipv6=True)``,
``add_public_host(ipv6=True)``, the site types in ``V6_SITE_TYPES`` (``v6-firewall``,
``dual-stack``, ``v6-only-nat64``: a real ``tayga`` NAT64 and an ``unbound`` DNS64) or
``add_site(..., ipv6=True)`` put those nodes on the public IPv6 segment 2001:db8:0:ff::/64
(still inside the ``pub`` bridge, no route off-lab).  ``add_dns`` starts an ``unbound`` for the
lab's names (zone ``natlab.test``) that every namespace's resolver then uses
(``/etc/netns/<ns>/resolv.conf``, which ``ip netns exec`` bind-mounts over /etc/resolv.conf).

``add_site(..., port_mapping=("natpmp", "pcp", "upnp"))`` runs a real miniupnpd on the site's
router (NAT-PMP, PCP and/or UPnP IGD); such a router's WAN has a routable address in
11.0.113.0/24 (``PM_NET``, on-link on the same bridge), because miniupnpd refuses reserved ones.

``Lab.move_host`` / ``unplug`` / ``plug`` move a site's host to another site's network (or
off any network) while its namespace -- and every process and socket in it -- lives on: a
phone changing networks in the middle of a call.

Everything is torn down by ``Lab.close()``: it is called by ``__exit__``, by an
``atexit`` hook, on SIGTERM (turned into ``SystemExit``), and is idempotent.
``cleanup_stale()`` removes namespaces left behind by a run that was killed
with SIGKILL (their owning pid no longer exists).

Synchronisation never sleeps: ``wait_for_line`` and everything else poll
against a deadline.

Only the Python standard library is used.
"""

from __future__ import annotations

import atexit
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

__all__ = [
    "NAT_TYPES", "PYTHON", "HERE", "UDP_PROBE",
    "Lab", "Node", "Site", "LabError",
    "nft_ruleset", "cleanup_stale", "wait_for_line", "output_of", "check_prerequisites",
    "start_coturn", "PRIMARY_PORT", "ALT_PORT", "SEQ_BASE", "SEQ_PORTS", "server_endpoints", "start_echo", "probe", "IP", "NFT",
    "wait_for_match", "lines_of", "send_line", "quic_divert_ruleset", "flush_conntrack_here",
    "V6_SITE_TYPES", "NAT64_WKP", "DNS_ZONE", "DNS_IP", "DNS_IP6", "nft_ruleset6", "public_ip6",
    "nat64_synth", "hostport", "server_endpoints6", "check_ipv6_prerequisites",
    "PORT_MAPPING_PROTOCOLS", "PORT_MAPPING_NATS", "PM_NET", "NATPMP_PORT",
    "check_port_mapping_prerequisites",
]

HERE = os.path.dirname(os.path.abspath(__file__))
UDP_PROBE = os.path.join(HERE, "udp_probe.py")
DELAY_LINE = os.path.join(HERE, "delay_line.py")
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

#: Router behaviours understood by ``Lab.add_site``.
NAT_TYPES = (
    "none",                 # host directly on the public segment
    "full-cone",            # EIM + endpoint-independent filtering (static DNAT of the host port)
    "port-restricted",      # EIM + address-and-port-dependent filtering
    "symmetric",            # address-and-port-dependent mapping (random ports) + APD filtering
    "symmetric-seq",        # the same with sequential ports: each new UDP flow the next port
    "double",               # two port-restricted layers: LAN 10.x -> CGN 100.64.x -> public
    "same-lan",             # two (or more) hosts behind one port-restricted NAT
    "udp-blocked-to-peer",  # port-restricted, router drops UDP to/from given public IPs
    "udp-blocked",          # port-restricted, router drops all forwarded UDP
)

PUBLIC_NET = ipaddress.ip_network("203.0.113.0/24")
SEQ_BASE, SEQ_PORTS = 20000, 256  # "symmetric-seq" routers' port range (wraps around)
SERVER_IPS = ("203.0.113.10", "203.0.113.11")
NS_PREFIX_RE = re.compile(r"^nl(\d+)x(\d+)-")

#: Site types with IPv6 (``Lab.add_site``), on top of ``NAT_TYPES`` (which stay IPv4-only unless
#: ``add_site(..., ipv6=True)``).
V6_SITE_TYPES = (
    "v6-firewall",          # IPv6-only host, global 2001:db8:k::/64, stateful firewall, no NAT66
    "dual-stack",           # an IPv4 NAT type (v4nat=, default port-restricted) + the v6 firewall
    "v6-only-nat64",        # IPv6-only host + tayga NAT64 (64:ff9b::/96) + unbound DNS64
)
PUBLIC_NET6 = ipaddress.ip_network("2001:db8:0:ff::/64")    # the public segment's IPv6 /64
NAT64_WKP = "64:ff9b::/96"          # RFC 6052 well-known prefix
NAT64_POOL = "192.168.255"          # tayga's IPv4 side: .1 tayga itself, .2+i host i
#: Port mapping (``add_site(..., port_mapping=...)``): a real miniupnpd on the router.
PORT_MAPPING_PROTOCOLS = ("natpmp", "pcp", "upnp")
PORT_MAPPING_NATS = ("port-restricted", "symmetric", "symmetric-seq")
#: The WAN addresses of port-mapping routers: 11.0.113.(20+10(k-1)), routable (not reserved) --
#: miniupnpd refuses to map on an external interface with a reserved address such as
#: 203.0.113.0/24's.  On the public segment on-link next to 203.0.113.0/24 (each public node
#: gets ``11.0.113.0/24 dev <its public link>`` once a lab has such a router).
PM_NET = ipaddress.ip_network("11.0.113.0/24")
NATPMP_PORT = 5351                  # NAT-PMP (RFC 6886) and PCP (RFC 6887) server port
DNS_ZONE = "natlab.test"            # the lab DNS zone (add_dns)
DNS_IP = "203.0.113.5"              # the lab DNS server (add_dns)
DNS_IP6 = "2001:db8:0:ff::5"
ETC_NETNS = "/etc/netns"            # ip netns exec bind-mounts /etc/netns/<ns>/* over /etc/*
TMP_PREFIX = "natlab-"              # + lab prefix: the lab's temp dir (tayga/unbound configs)


def _tool(name: str) -> str:
    """Absolute path of a system tool, also when PATH lacks the sbin directories."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    return found or name


_IP = _tool("ip")
_NFT = _tool("nft")
_SYSCTL = _tool("sysctl")
_TAYGA = _tool("tayga")
_UNBOUND = _tool("unbound")
_UNBOUND_CONTROL = _tool("unbound-control")
_STDBUF = _tool("stdbuf")
_MINIUPNPD = _tool("miniupnpd")
IP = _IP      #: absolute path of ``ip`` (for tests that call it themselves)
NFT = _NFT    #: absolute path of ``nft``

_open_labs: "set[Lab]" = set()
_open_labs_lock = threading.Lock()
_lab_counter = 0
_sigterm_installed = False


class LabError(RuntimeError):
    """A lab command failed (the message carries the command and its stderr)."""


# --------------------------------------------------------------------------------------------
# Low-level helpers

def _cmd(argv: Sequence[str], *, input: Optional[str] = None, timeout: float = 10.0,
         check: bool = True) -> subprocess.CompletedProcess:
    """Run a host-side command (ip, nft, ...) and raise ``LabError`` if it fails."""
    try:
        cp = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                            timeout=timeout)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]}: not found") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv)}") from e
    if check and cp.returncode != 0:
        raise LabError(f"command failed ({cp.returncode}): {' '.join(argv)}\n"
                       f"{cp.stderr.strip()}")
    return cp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _list_netns() -> list:
    cp = _cmd([_IP, "netns", "list"], check=False)
    if cp.returncode != 0:
        return []
    return [line.split()[0] for line in cp.stdout.splitlines() if line.strip()]


def _kill_netns_pids(ns: str) -> None:
    """SIGKILL every process still living in namespace ``ns``."""
    cp = _cmd([_IP, "netns", "pids", ns], check=False)
    for tok in cp.stdout.split():
        try:
            os.kill(int(tok), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def _delete_netns(ns: str) -> Optional[str]:
    """Kill what runs inside ``ns`` and delete it (its veths go with it).  Returns an error."""
    _kill_netns_pids(ns)
    cp = _cmd([_IP, "netns", "del", ns], check=False)
    if cp.returncode != 0 and os.path.exists(os.path.join("/run/netns", ns)):
        return f"ip netns del {ns}: {cp.stderr.strip()}"
    return None


def _stale_pid(name: str) -> bool:
    """True when ``name`` starts with ``nl<pid>x<n>-`` and ``<pid>`` is dead (not us)."""
    m = NS_PREFIX_RE.match(name)
    if not m:
        return False
    pid = int(m.group(1))
    return pid != os.getpid() and not _pid_alive(pid)


def _remove_stale_files(verbose: bool) -> None:
    """Remove /etc/netns/<ns> directories and temp dirs of dead lab runs."""
    candidates = []
    try:
        candidates += [os.path.join(ETC_NETNS, d) for d in os.listdir(ETC_NETNS)
                       if _stale_pid(d)]
    except OSError:
        pass
    tmp = tempfile.gettempdir()
    try:
        candidates += [os.path.join(tmp, d) for d in os.listdir(tmp)
                       if d.startswith(TMP_PREFIX) and _stale_pid(d[len(TMP_PREFIX):])]
    except OSError:
        pass
    for path in candidates:
        shutil.rmtree(path, ignore_errors=True)
        if verbose:
            print(f"natlab: removed stale {path}", file=sys.stderr)


def cleanup_stale(verbose: bool = False) -> list:
    """Delete namespaces left by earlier, crashed lab runs.

    A namespace belongs to the lab scheme when its name starts with ``nl<pid>x<n>-``.  It is
    stale when ``<pid>`` no longer exists; namespaces of live processes (other labs running
    in parallel, e.g. under ``ctest -j``) and of this process are left alone.  Returns the
    names deleted.  The same runs' ``/etc/netns/<ns>`` resolver directories and temp dirs
    (``/tmp/natlab-nl<pid>x<n>-*``) are removed too.
    """
    removed = []
    for ns in _list_netns():
        m = NS_PREFIX_RE.match(ns)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or _pid_alive(pid):
            continue
        err = _delete_netns(ns)
        if err is None:
            removed.append(ns)
        elif verbose:
            print(f"natlab: {err}", file=sys.stderr)
    if verbose and removed:
        print(f"natlab: removed stale namespaces: {' '.join(removed)}", file=sys.stderr)
    _remove_stale_files(verbose)
    return removed


def check_prerequisites() -> None:
    """Raise ``unittest.SkipTest`` unless the lab can run here (root, ip, nft)."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("natlab needs root (network namespaces, nftables)")
    if not os.path.isabs(_IP):
        raise unittest.SkipTest("natlab needs iproute2 ('ip' not found)")
    if not os.path.isabs(_NFT):
        raise unittest.SkipTest("natlab needs nftables ('nft' not found)")


def check_ipv6_prerequisites(*, nat64: bool = False, dns: bool = False) -> None:
    """Raise ``unittest.SkipTest`` unless the IPv6 parts can run here.

    Always: root, ip, nft (``check_prerequisites``) and a kernel with IPv6.  ``nat64``: also
    ``tayga`` and ``/dev/net/tun`` (and ``unbound`` for the DNS64); ``dns``: ``unbound``
    (Debian packages ``tayga`` and ``unbound``, installed by scripts/setup-deps).
    """
    check_prerequisites()
    if not os.path.isdir("/proc/sys/net/ipv6"):
        raise unittest.SkipTest("natlab IPv6: the kernel has no IPv6 (/proc/sys/net/ipv6)")
    if nat64:
        if not os.path.isabs(_TAYGA):
            raise unittest.SkipTest("natlab v6-only-nat64 needs tayga (Debian package 'tayga';"
                                    " scripts/setup-deps installs it)")
        if not os.path.exists("/dev/net/tun"):
            raise unittest.SkipTest("natlab v6-only-nat64 needs /dev/net/tun (tayga's tun)")
    if nat64 or dns:
        if not os.path.isabs(_UNBOUND) or not os.path.isabs(_UNBOUND_CONTROL):
            raise unittest.SkipTest("natlab DNS/DNS64 needs unbound and unbound-control (Debian"
                                    " package 'unbound'; scripts/setup-deps installs it)")


def check_port_mapping_prerequisites() -> None:
    """Raise ``unittest.SkipTest`` unless port-mapping routers can run here: root, ip, nft
    and miniupnpd (Debian package ``miniupnpd-nftables``; scripts/setup-deps installs it)."""
    check_prerequisites()
    if not os.path.isabs(_MINIUPNPD):
        raise unittest.SkipTest("natlab port_mapping needs miniupnpd (Debian package "
                                "'miniupnpd-nftables'; scripts/setup-deps installs it)")


def public_ip6(ip4: str) -> str:
    """The IPv6 twin of a public lab address: 203.0.113.N -> 2001:db8:0:ff::N.

    (N's decimal digits are used as they are, i.e. read as hex: .10 -> ::10, .200 -> ::200.)
    """
    addr = ipaddress.ip_address(ip4)
    if addr not in PUBLIC_NET:
        raise ValueError(f"{ip4} is not in {PUBLIC_NET}")
    return f"2001:db8:0:ff::{ip4.rsplit('.', 1)[1]}"


def nat64_synth(ip4: str, prefix: str = NAT64_WKP) -> str:
    """The IPv6 address that reaches IPv4 ``ip4`` through a NAT64 /96 ``prefix`` (RFC 6052)."""
    net = ipaddress.ip_network(prefix)
    if net.version != 6 or net.prefixlen != 96:
        raise ValueError(f"{prefix} is not an IPv6 /96")
    return str(ipaddress.IPv6Address(int(net.network_address) |
                                     int(ipaddress.IPv4Address(ip4))))


def _fixed_mac(name: str) -> str:
    """A locally administered unicast MAC address of its own for the node ``name``."""
    return "02:" + ":".join(f"{b:02x}" for b in hashlib.sha256(name.encode()).digest()[:5])


def hostport(ip: str, port: int) -> str:
    """``ip:port`` for IPv4, ``[ip]:port`` for IPv6 (the form udp_probe.py reads and prints)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _family(addr: str) -> int:
    return ipaddress.ip_address(addr).version


def _atexit_close_all() -> None:
    with _open_labs_lock:
        labs = list(_open_labs)
    for lab in labs:
        lab.close()


atexit.register(_atexit_close_all)


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so ``finally``/``__exit__``/atexit teardown runs."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def _on_sigterm(signum, frame):  # pragma: no cover - exercised by ctest timeouts
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _on_sigterm)
    _sigterm_installed = True


# --------------------------------------------------------------------------------------------
# Output collection and wait_for_line

class _Collector:
    """Drains one pipe of a process in a thread, so the child never blocks on a full pipe."""

    def __init__(self, stream):
        self.lines: list = []
        self.cursor = 0          # wait_for_line resumes after the last matched line
        self.eof = False
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self.thread.start()

    def _run(self, stream):
        try:
            for raw in iter(stream.readline, b"" if not hasattr(stream, "encoding") else ""):
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                with self.cond:
                    self.lines.append(text.rstrip("\r\n"))
                    self.cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def text(self) -> str:
        with self.cond:
            return "\n".join(self.lines)


def _collector(proc: subprocess.Popen, which: str) -> Optional[_Collector]:
    attr = f"_natlab_{which}"
    col = getattr(proc, attr, None)
    if col is None:
        stream = getattr(proc, which)
        if stream is None:
            return None
        col = _Collector(stream)
        setattr(proc, attr, col)
    return col


def wait_for_line(proc: subprocess.Popen, pattern, timeout: float, *,
                  stream: str = "stdout") -> "re.Match":
    """Wait until ``proc`` prints a line matching ``pattern`` (regex ``search``).

    Scans the lines after the previous match (each line matches at most once), and waits at
    most ``timeout`` seconds.  Raises ``TimeoutError`` on the deadline and ``LabError`` when
    the stream ends (process exited) first; both messages carry the output seen so far.
    ``proc`` must have been started with ``stdout=PIPE`` (``Lab.spawn`` does).
    """
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    col = _collector(proc, stream)
    if col is None:
        raise ValueError(f"process has no {stream} pipe")
    deadline = time.monotonic() + timeout
    with col.cond:
        while True:
            while col.cursor < len(col.lines):
                line = col.lines[col.cursor]
                col.cursor += 1
                m = regex.search(line)
                if m:
                    return m
            if col.eof:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"no line matching {regex.pattern!r} within {timeout}s; "
                    f"output so far:\n{_describe(proc)}")
            col.cond.wait(remaining)
    # The stream closed: give the process a moment to be reaped for a useful message.
    try:
        proc.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pass
    raise LabError(f"{stream} closed (exit code {proc.returncode}) before a line matching "
                   f"{regex.pattern!r}; output:\n{_describe(proc)}")


def output_of(proc: subprocess.Popen) -> tuple:
    """``(stdout, stderr)`` text collected so far from a process started by ``Lab.spawn``."""
    out = _collector(proc, "stdout")
    err = _collector(proc, "stderr")
    return (out.text() if out else "", err.text() if err else "")


def wait_for_match(proc: subprocess.Popen, pattern, timeout: float, *, start: int = 0,
                   stream: str = "stdout") -> tuple:
    """Wait until a line at index ``start`` or later of ``proc``'s output matches ``pattern``.

    Unlike ``wait_for_line`` it keeps no cursor of its own and consumes nothing: the caller
    says where to start (lines are numbered from 0 in arrival order, see ``lines_of``) and
    gets ``(index, match)`` back, so independent waiters (e.g. one for "path" events, one for
    "stats" answers) never skip each other's lines.  ``pattern`` is a regex (``search``) or a
    callable ``line -> truthy`` (the truthy value is returned instead of a match).  Raises
    ``TimeoutError`` on the deadline and ``LabError`` when the stream ends first.
    """
    if callable(pattern):
        test = pattern
        what = getattr(pattern, "__name__", "predicate")
    else:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        test = regex.search
        what = repr(regex.pattern)
    col = _collector(proc, stream)
    if col is None:
        raise ValueError(f"process has no {stream} pipe")
    deadline = time.monotonic() + timeout
    i = max(0, start)
    with col.cond:
        while True:
            while i < len(col.lines):
                m = test(col.lines[i])
                if m:
                    return i, m
                i += 1
            if col.eof:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line matching {what} within {timeout}s; "
                                   f"output so far:\n{_describe(proc)}")
            col.cond.wait(remaining)
    try:
        proc.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pass
    raise LabError(f"{stream} closed (exit code {proc.returncode}) before a line matching "
                   f"{what}; output:\n{_describe(proc)}")


def lines_of(proc: subprocess.Popen, stream: str = "stdout") -> list:
    """A snapshot of the lines ``proc`` printed so far (index = ``wait_for_match`` index)."""
    col = _collector(proc, stream)
    if col is None:
        return []
    with col.cond:
        return list(col.lines)


def send_line(proc: subprocess.Popen, text: str) -> None:
    """Write ``text`` + newline to the stdin of a process spawned with ``stdin=True``."""
    if proc.stdin is None:
        raise ValueError("process was not spawned with stdin=True")
    try:
        proc.stdin.write(text.encode() + b"\n")
        proc.stdin.flush()
    except (BrokenPipeError, ValueError, OSError) as e:
        raise LabError(f"cannot write {text!r} to the process (exit code "
                       f"{proc.poll()}): {e}\n{_describe(proc)}") from e


def _describe(proc: subprocess.Popen) -> str:
    out, err = output_of(proc)
    return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"


# --------------------------------------------------------------------------------------------
# Topology objects

@dataclass
class Node:
    """One namespace of the lab.

    ``name`` is the lab-local short name (e.g. ``"pr-h0"``), ``ns`` the real namespace name
    (prefixed), ``ips`` its addresses on its main link (the first is ``ip``).  Routers also
    have ``wan_ip``, ``lan_ip`` and ``nft_rules`` (the ruleset text loaded into them).
    IPv6 (opt-in): ``ips6`` (the first is ``ip6``; routers: the WAN address), routers'
    ``wan_ip6``/``lan_ip6`` and ``nft_rules6`` (their ``table ip6 natlab6``), and
    ``resolvers``: the nameservers of its /etc/netns resolv.conf (empty: none written).
    IPv6-only nodes have ``ips == []``.
    """
    name: str
    ns: str
    role: str                        # "internet" | "public" | "host" | "router"
    ips: list = field(default_factory=list)
    wan_ip: Optional[str] = None
    lan_ip: Optional[str] = None
    nft_rules: Optional[str] = None
    ips6: list = field(default_factory=list)
    wan_ip6: Optional[str] = None
    lan_ip6: Optional[str] = None
    nft_rules6: Optional[str] = None
    resolvers: list = field(default_factory=list)

    @property
    def ip(self) -> Optional[str]:
        return self.ips[0] if self.ips else None

    @property
    def ip6(self) -> Optional[str]:
        return self.ips6[0] if self.ips6 else None

    def __str__(self) -> str:
        return self.ns


@dataclass
class Site:
    """A NAT site: hosts plus the router(s) in front of them.

    ``hosts``: the LAN hosts (for ``none``: hosts directly on the public segment).
    ``routers``: router nodes ordered from the hosts outwards (empty for ``none``).
    ``public_ip``: the address the public segment sees for these hosts.
    ``host_port``: the UDP port the hosts are expected to use.
    ``public_ports``: host name -> public port that ``host_port`` is pinned to (EIM types and
    full-cone); empty for ``symmetric`` and when ``pin=False``.
    IPv6 (``V6_SITE_TYPES`` or ``ipv6=True``): ``v4nat`` is the IPv4 behaviour (the type for
    IPv4 types, dual-stack's ``v4nat``, None for IPv6-only sites); ``prefix6`` the LAN's
    2001:db8:k::/64 (None for ``none``: its hosts sit on the public /64); ``v6-only-nat64``:
    ``nat64_prefix`` (the /96 the hosts reach IPv4 through), ``dns64`` (the resolver address
    the hosts use), and ``public_ip``/``public_ports`` are the NAT64's IPv4 side (the
    address and pinned ports the IPv4 internet sees).  ``v6-firewall``: ``public_ip`` None.
    Port mapping (``add_site(..., port_mapping=...)``): ``port_mapping`` is the tuple of
    protocols the router's miniupnpd answers (in ``PORT_MAPPING_PROTOCOLS`` order; ``()``: a
    routable WAN address but no miniupnpd), None on ordinary sites; ``miniupnpd`` its process
    (``Lab.spawn``ed, stopped at teardown); ``upnp_port`` the TCP port of its UPnP HTTP server
    (on the router's LAN address) when ``"upnp"`` is enabled.
    """
    name: str
    nat: str
    hosts: list
    routers: list
    public_ip: Optional[str]
    host_port: int
    public_ports: dict
    blocked_peers: tuple = ()
    v4nat: Optional[str] = None
    ipv6: bool = False
    prefix6: Optional[str] = None
    nat64_prefix: Optional[str] = None
    dns64: Optional[str] = None
    port_mapping: Optional[tuple] = None
    miniupnpd: Optional[subprocess.Popen] = field(default=None, repr=False, compare=False)
    upnp_port: Optional[int] = None

    @property
    def ipv4(self) -> bool:
        """Whether the hosts have IPv4 (False for v6-firewall and v6-only-nat64)."""
        return self.nat not in ("v6-firewall", "v6-only-nat64")

    @property
    def host(self) -> Node:
        return self.hosts[0]

    @property
    def router(self) -> Optional[Node]:
        """The outermost router (the one with the public WAN), or None."""
        return self.routers[-1] if self.routers else None

    def public_port(self, host: Optional[Node] = None) -> Optional[int]:
        return self.public_ports.get((host or self.host).name)


@dataclass
class _SiteMeta:
    """What ``Lab`` remembers of a site to plug hosts into it later (``Lab.plug``)."""
    pin: bool               # add_site(pin=...)
    next_index: int         # the index the next host plugged in gets (indices are not reused)
    static: int             # v6-only-nat64: hosts 0 .. static-1 have tayga static maps


NsLike = Union[Node, str]


# --------------------------------------------------------------------------------------------
# nftables rulesets

def nft_ruleset(kind: str, *, wan_if: str = "wan0",
                pins: Iterable = (), dnat: bool = False,
                blocked_peers: Iterable = (), block_udp: bool = False,
                wan_ip: Optional[str] = None, accept_dnat: bool = False) -> str:
    """The nftables ruleset of one router layer.

    ``kind``: ``"eim"`` (masquerade; endpoint-independent while the source port is free) or
    ``"symmetric"`` (``masquerade random,fully-random``: a fresh random port per flow) or
    ``"symmetric-seq"`` (UDP: SNAT to ``wan_ip`` at the next port of ``SEQ_BASE`` ..
    ``SEQ_BASE + SEQ_PORTS - 1`` per new flow, wrapping).
    ``pins``: ``(lan_ip, lan_port, wan_ip, wan_port)`` -- static SNAT of a host's UDP port,
    so its mapping is endpoint-independent even when two LAN hosts use the same port.
    ``dnat``: also forward unsolicited inbound ``wan_ip:wan_port`` of each pin to the host
    (full cone: endpoint-independent filtering).  Without it every new inbound flow on the
    WAN is dropped (address-and-port-dependent filtering).
    ``blocked_peers``: public IPs the router drops forwarded UDP to and from.
    ``block_udp``: drop all forwarded UDP.
    ``accept_dnat``: let inbound flows DNAT'ed by someone else's rules through the forward
    chain (``ct status dnat accept`` before the drop, as ``dnat`` does): a port-mapping
    router, whose miniupnpd DNATs in a table of its own.
    """
    if kind not in ("eim", "symmetric", "symmetric-seq"):
        raise ValueError(f"unknown router kind {kind!r}")
    if kind == "symmetric-seq" and not wan_ip:
        raise ValueError("symmetric-seq needs wan_ip")
    pins = list(pins)
    pre = []
    post = []
    fwd = []
    if dnat:
        for lan_ip, lan_port, _wan_ip, wan_port in pins:
            pre.append(f'iifname "{wan_if}" udp dport {wan_port} dnat to {lan_ip}:{lan_port}')
    for lan_ip, lan_port, wan_ip, wan_port in pins:
        post.append(f'oifname "{wan_if}" ip saddr {lan_ip} udp sport {lan_port} '
                    f'snat to {wan_ip}:{wan_port}')
    if kind == "symmetric-seq":
        # A counter per new UDP flow (NAT rules see only a flow's first packet): every flow,
        # whatever its destination, takes the next port of the range, as CGNATs and many
        # home routers allocate. A port still in use is skipped by the kernel.
        # (A map, not "numgen ... offset": a port is in network byte order, the counter not.)
        ports = ", ".join(f"{i} : {SEQ_BASE + i}" for i in range(SEQ_PORTS))
        post.append(f'oifname "{wan_if}" meta l4proto udp snat to {wan_ip}'
                    f':numgen inc mod {SEQ_PORTS} map {{ {ports} }}')
    post.append(f'oifname "{wan_if}" masquerade'
                + (" random,fully-random" if kind == "symmetric" else ""))
    if block_udp:
        fwd.append("meta l4proto udp drop")
    peers = sorted(set(blocked_peers))
    if peers:
        s = ", ".join(peers)
        fwd.append(f"ip daddr {{ {s} }} meta l4proto udp drop")
        fwd.append(f"ip saddr {{ {s} }} meta l4proto udp drop")
    if dnat or accept_dnat:
        fwd.append(f'iifname "{wan_if}" ct status dnat accept')
    fwd.append(f'iifname "{wan_if}" ct state new drop')

    def chain(name, hook, prio, rules):
        body = "".join(f"\t\t{r}\n" for r in rules)
        return (f"\tchain {name} {{\n\t\ttype {'nat' if prio in ('dstnat', 'srcnat') else 'filter'}"
                f" hook {hook} priority {prio}; policy accept;\n{body}\t}}\n")

    return ("table ip natlab {\n"
            + (chain("prerouting", "prerouting", "dstnat", pre) if pre else "")
            + chain("postrouting", "postrouting", "srcnat", post)
            + chain("input", "input", "filter", [f'iifname "{wan_if}" ct state new drop'])
            + chain("forward", "forward", "filter", fwd)
            + "}\n")


def nft_ruleset6(*, wan_if: str = "wan0", lan_if: str = "lan0",
                 blocked_peers: Iterable = (), block_udp: bool = False,
                 nat64_map: Optional[tuple] = None) -> str:
    """``table ip6 natlab6``: a router's stateful IPv6 firewall (no NAT66).

    Forward: from ``wan_if`` only ``ct state established,related`` passes, everything else
    (new flows) is dropped -- address-and-port-dependent filtering, the hosts keep their own
    global addresses.  Input: new flows from the WAN are dropped (neighbour discovery is
    untracked by conntrack, so it still works).  ``block_udp`` / ``blocked_peers`` (IPv6
    addresses) as in ``nft_ruleset``.  ``nat64_map=(public, internal)``: a prerouting rule that
    maps the /96 ``public`` NAT64 prefix the LAN uses onto tayga's ``internal`` one
    (``dnat ip6 prefix to``; conntrack maps the answers back).
    """
    pre = []
    if nat64_map:
        public, internal = nat64_map
        pre.append(f'iifname "{lan_if}" ip6 daddr {public} dnat ip6 prefix to {internal}')
    fwd = []
    if block_udp:
        fwd.append("meta l4proto udp drop")
    peers = sorted(set(blocked_peers))
    if peers:
        s = ", ".join(peers)
        fwd.append(f"ip6 daddr {{ {s} }} meta l4proto udp drop")
        fwd.append(f"ip6 saddr {{ {s} }} meta l4proto udp drop")
    fwd.append(f'iifname "{wan_if}" ct state established,related accept')
    fwd.append(f'iifname "{wan_if}" drop')

    def chain(name, hook, prio, kind, rules):
        body = "".join(f"\t\t{r}\n" for r in rules)
        return (f"\tchain {name} {{\n\t\ttype {kind} hook {hook} priority {prio}; "
                f"policy accept;\n{body}\t}}\n")

    return ("table ip6 natlab6 {\n"
            + (chain("prerouting", "prerouting", "dstnat", "nat", pre) if pre else "")
            + chain("input", "input", "filter", "filter",
                    [f'iifname "{wan_if}" ct state new drop'])
            + chain("forward", "forward", "filter", "filter", fwd)
            + "}\n")


# --------------------------------------------------------------------------------------------
# The lab

class Lab:
    """A throw-away internet made of network namespaces.

    Use as a context manager (or call ``start()``/``close()``)::

        with Lab() as lab:
            server = lab.add_server()                      # 203.0.113.10 and .11
            site = lab.add_site("pr", "port-restricted")   # host 10.0.1.2 behind 203.0.113.20
            srv = lab.spawn(server, [PYTHON, UDP_PROBE, "server", "--bind", "203.0.113.10:3478"])
            wait_for_line(srv, r"^ready$", 5)
            cp = lab.run(site.host, [PYTHON, UDP_PROBE, "client", ...], timeout=5)

    Addresses: site number k (1-based, in creation order) gets LAN 10.0.k.0/24 (router .1,
    hosts .2, .3, ...), CGN link 100.64.k.0/24 (``double``: outer .1, inner .2) and public
    address 203.0.113.(20 + 10*(k-1)) for its router WAN (``none``: for its first host,
    further hosts +1, +2, ...; ``port_mapping=`` sites: 11.0.113.(20 + 10*(k-1))).
    ``add_public_host`` without addresses allocates from 203.0.113.200 upwards.

    ``prefix`` defaults to ``nl<pid>x<n>-`` (n counts labs in this process); a custom prefix
    should keep that form, or ``cleanup_stale`` will not recognise leftovers.
    """

    def __init__(self, prefix: Optional[str] = None):
        global _lab_counter
        if prefix is None:
            prefix = f"nl{os.getpid()}x{_lab_counter}-"
            _lab_counter += 1
        self.prefix = prefix
        self.nodes: dict = {}          # short name -> Node
        self.sites: dict = {}          # site name -> Site
        self._namespaces: list = []    # creation order (registered before creation)
        self._procs: list = []
        self._port_count: int = 0      # ports on the public bridge
        self._next_public_host = 200
        self._started = False
        self._closed = False
        self.internet: Optional[Node] = None
        # IPv6 / DNS (opt-in)
        self.dns: Optional[Node] = None         # add_dns
        self.dns_records: dict = {}            # fqdn -> [addresses]
        self.blackholes: dict = {}             # table name -> addresses (blackhole)
        self._v6_public: list = []             # namespaces with an address on 2001:db8:0:ff::/64
        self._v6_routes: list = []             # (site prefix, router WAN v6, router ns)
        self._resolver_override: dict = {}     # node name -> nameservers (NAT64 hosts)
        self._etc_dirs: list = []              # /etc/netns/<ns> written by this lab
        self._tables: dict = {}                # (ns, table) -> family, for remove_table
        self._unbounds: list = []              # (node, "dns"|"dns64", config path)
        self._tmpdir: Optional[str] = None
        # Moving hosts (move_host / unplug / plug)
        self._site_meta: dict = {}             # site name -> _SiteMeta
        self._slot: dict = {}                  # host name -> its index on its current site
        self._ns_ipv6: set = set()             # namespaces with IPv6 enabled (_setup_ns)
        # Port-mapping routers (add_site(port_mapping=...)): their WAN is on PM_NET
        self._public_links: list = []          # (ns, ifname): IPv4 links on 203.0.113.0/24
        self._pm_routes = False                # PM_NET routed on-link from those (lazily)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Lab":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Lab":
        """Check prerequisites (``SkipTest`` if unmet) and create the public segment."""
        if self._started:
            return self
        check_prerequisites()
        cleanup_stale()
        _install_sigterm_handler()
        self._started = True
        with _open_labs_lock:
            _open_labs.add(self)
        try:
            ns = self.prefix + "inet"
            self._namespaces.append(ns)
            cp = _cmd([_IP, "netns", "add", ns], check=False)
            if cp.returncode != 0:
                self._namespaces.remove(ns)
                raise unittest.SkipTest(f"'ip netns add' failed: {cp.stderr.strip()}")
            # nftables with NAT must work inside a namespace, or no router can be built.
            nat_probe = ("table ip natlab_probe {\n\tchain p {\n\t\ttype nat hook postrouting"
                         " priority srcnat; policy accept;\n"
                         "\t\tmasquerade random,fully-random\n\t}\n}\n")
            cp = _cmd([_IP, "netns", "exec", ns, _NFT, "-f", "-"], input=nat_probe, check=False)
            if cp.returncode != 0:
                raise unittest.SkipTest(f"nftables NAT unusable in a namespace: "
                                        f"{cp.stderr.strip()}")
            _cmd([_IP, "netns", "exec", ns, _NFT, "flush", "ruleset"])
            self._setup_ns(ns)
            self._ipn(ns, "link", "add", "pub", "type", "bridge")
            self._ipn(ns, "link", "set", "pub", "up")
            self.internet = Node("inet", ns, "internet")
            self.nodes["inet"] = self.internet
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Tear everything down: spawned processes, then every namespace.

        Idempotent and resumable: each process/namespace is forgotten only once it is gone,
        so a teardown cut short (an exception inside it) is finished by the next call, at the
        latest by the ``atexit`` hook.  SIGTERM and SIGINT are held back while it runs.
        """
        self._closed = True
        blocked = None
        if threading.current_thread() is threading.main_thread():
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        errors = []
        try:
            while self._procs:
                self._stop_proc(self._procs[-1], grace=1.0)
                self._procs.pop()
            while self._namespaces:
                err = _delete_netns(self._namespaces[-1])
                if err:
                    errors.append(err)
                self._namespaces.pop()
            while self._etc_dirs:
                shutil.rmtree(self._etc_dirs[-1], ignore_errors=True)
                self._etc_dirs.pop()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
            with _open_labs_lock:
                _open_labs.discard(self)
        finally:
            if blocked is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if errors:
            print("natlab: teardown problems:\n  " + "\n  ".join(errors), file=sys.stderr)

    def namespaces(self) -> list:
        """The namespace names this lab created (and has not yet deleted)."""
        return list(self._namespaces)

    # -- running things ----------------------------------------------------------------------

    def ns_of(self, ns: NsLike) -> str:
        """Resolve a Node, a lab-local short name or a full namespace name."""
        if isinstance(ns, Node):
            return ns.ns
        if ns in self.nodes:
            return self.nodes[ns].ns
        return ns

    def run(self, ns: NsLike, argv: Sequence[str], timeout: float = 10.0, *,
            check: bool = False, input: Optional[str] = None,
            env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` inside ``ns`` (``ip netns exec``) and capture text stdout/stderr.

        On timeout the whole process group is killed and ``subprocess.TimeoutExpired`` is
        raised (with the output so far).  ``check=True`` raises ``CalledProcessError`` on a
        non-zero exit.
        """
        self._require_running()
        full = [_IP, "netns", "exec", self.ns_of(ns), *argv]
        proc = subprocess.Popen(full, stdin=subprocess.PIPE if input is not None else
                                subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env=env)
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._killpg(proc)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(full, timeout, output=out, stderr=err)
        except BaseException:
            self._killpg(proc)
            proc.wait()
            raise
        cp = subprocess.CompletedProcess(full, proc.returncode, out, err)
        if check:
            cp.check_returncode()
        return cp

    def spawn(self, ns: NsLike, argv: Sequence[str], *,
              env: Optional[dict] = None, stdin: bool = False) -> subprocess.Popen:
        """Start ``argv`` in the background inside ``ns``; it is killed at teardown.

        stdout and stderr are pipes drained by threads: use ``wait_for_line`` to wait for
        output and ``output_of`` to read it; ``stop`` to end the process early.
        ``stdin=True`` gives it a stdin pipe for ``send_line`` (default: /dev/null).
        """
        self._require_running()
        proc = subprocess.Popen([_IP, "netns", "exec", self.ns_of(ns), *argv],
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=env)
        self._procs.append(proc)
        _collector(proc, "stdout")
        _collector(proc, "stderr")
        return proc

    #: ``lab.wait_for_line(proc, pattern, timeout)`` -- the module function, for convenience.
    wait_for_line = staticmethod(wait_for_line)

    def stop(self, proc: subprocess.Popen, grace: float = 2.0) -> Optional[int]:
        """SIGTERM ``proc`` (its process group), SIGKILL after ``grace`` s; returns its code."""
        self._stop_proc(proc, grace)
        return proc.returncode

    @staticmethod
    def _killpg(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop_proc(self, proc: subprocess.Popen, grace: float) -> None:
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if proc.poll() is None:
            self._killpg(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self._killpg(proc, signal.SIGKILL)   # stragglers in the group
        if proc.poll() is None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for which in ("stdout", "stderr"):
            col = getattr(proc, f"_natlab_{which}", None)
            if col is not None:
                col.thread.join(timeout=1.0)
            stream = getattr(proc, which)
            if stream is not None and (col is None or not col.thread.is_alive()):
                stream.close()

    def _require_running(self) -> None:
        if not self._started or self._closed:
            raise LabError("lab is not running (call start() or use 'with Lab() as lab')")

    # -- building blocks ---------------------------------------------------------------------

    def _ipn(self, ns: str, *args: str) -> None:
        _cmd([_IP, "-n", ns, *args])

    def _setup_ns(self, ns: str, *, forward: bool = False, ipv6: bool = False) -> None:
        """lo up; IPv6 off (unless ``ipv6``); ip_forward (and IPv6 forwarding) for routers.

        With ``ipv6``: no DAD (addresses are usable at once), no router advertisements, no
        SLAAC -- every address and route is static.
        """
        self._ipn(ns, "link", "set", "lo", "up")
        if not ipv6:
            settings = ["net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1",
                        f"net.ipv4.ip_forward={1 if forward else 0}"]
        else:
            f = 1 if forward else 0
            settings = [f"net.ipv6.conf.{c}.{k}={v}" for k, v in
                        (("disable_ipv6", 0), ("accept_dad", 0), ("accept_ra", 0),
                         ("autoconf", 0), ("forwarding", f)) for c in ("all", "default")]
            settings.append(f"net.ipv4.ip_forward={f}")
        _cmd([_IP, "netns", "exec", ns, _SYSCTL, "-q", "-w", *settings])
        if ipv6:
            self._ns_ipv6.add(ns)
        else:
            self._ns_ipv6.discard(ns)

    def _add_ns(self, short: str, role: str, *, forward: bool = False,
                ipv6: bool = False) -> Node:
        self._require_running()
        if short in self.nodes:
            raise ValueError(f"node name {short!r} already used")
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", short):
            raise ValueError(f"bad node name {short!r} (lowercase letters, digits, '-')")
        ns = self.prefix + short
        self._namespaces.append(ns)        # registered first: teardown covers partial work
        _cmd([_IP, "netns", "add", ns])
        self._setup_ns(ns, forward=forward, ipv6=ipv6)
        node = Node(short, ns, role)
        self.nodes[short] = node
        return node

    def _link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        """veth pair created directly inside the two namespaces (no root-namespace names)."""
        self._ipn(a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b)

    def _attach_public(self, node: Node, ifname: str) -> None:
        port = f"p{self._port_count}"
        self._port_count += 1
        self._link(node.ns, ifname, self.internet.ns, port)
        self._ipn(self.internet.ns, "link", "set", port, "master", "pub")
        self._ipn(self.internet.ns, "link", "set", port, "up")

    def _public_link(self, node: Node, ifname: str, addr: Optional[str]) -> None:
        """Routes between the two IPv4 prefixes of the public segment, once ``node``'s public
        link ``ifname`` is up with ``addr`` (None: no IPv4 there, nothing to do).

        A node on 203.0.113.0/24 reaches ``PM_NET`` (port-mapping routers' WANs) on-link --
        added only once the lab has a port-mapping router, then to every earlier and later
        node, so labs without one run the same commands as before.  A port-mapping router
        (``addr`` in ``PM_NET``) reaches 203.0.113.0/24 on-link from its own address.
        """
        if addr is None:
            return
        if ipaddress.ip_address(addr) in PM_NET:
            self._ipn(node.ns, "route", "add", str(PUBLIC_NET), "dev", ifname, "src", addr)
            if not self._pm_routes:
                self._pm_routes = True
                for ns, ifn in self._public_links:
                    self._ipn(ns, "route", "add", str(PM_NET), "dev", ifn)
            return
        self._public_links.append((node.ns, ifname))
        if self._pm_routes:
            self._ipn(node.ns, "route", "add", str(PM_NET), "dev", ifname)

    def _addr_up(self, ns: str, ifname: str, addrs: Sequence[str], plen: int) -> None:
        for a in addrs:
            self._ipn(ns, "addr", "add", f"{a}/{plen}", "dev", ifname)
        self._ipn(ns, "link", "set", ifname, "up")

    def _addr6_up(self, ns: str, ifname: str, addrs: Sequence[str], plen: int = 64) -> None:
        for a in addrs:
            self._ipn(ns, "-6", "addr", "add", f"{a}/{plen}", "dev", ifname, "nodad")
        self._ipn(ns, "link", "set", ifname, "up")

    def _public6(self, node: Node, ifname: str, addrs: Sequence[str]) -> None:
        """Put IPv6 ``addrs`` (in 2001:db8:0:ff::/64) on ``node``'s public link, with routes to
        every IPv6 site LAN created so far (their routers' WAN addresses as next hops)."""
        for a in addrs:
            if ipaddress.ip_address(a) not in PUBLIC_NET6:
                raise ValueError(f"{a} is not in {PUBLIC_NET6}")
        self._addr6_up(node.ns, ifname, addrs)
        self._v6_public.append(node.ns)
        for prefix, via, _owner in self._v6_routes:
            self._ipn(node.ns, "-6", "route", "add", prefix, "via", via)

    def _add_route6(self, prefix: str, router: Node) -> None:
        """Route a site's LAN ``prefix`` via ``router``'s WAN from every other public v6 node
        (and from those created later)."""
        for ns in self._v6_public:
            if ns != router.ns:
                self._ipn(ns, "-6", "route", "add", prefix, "via", router.wan_ip6)
        self._v6_routes.append((prefix, router.wan_ip6, router.ns))

    def _tmp(self) -> str:
        """The lab's temp dir (configs of tayga/unbound), removed at teardown."""
        if self._tmpdir is None:
            self._tmpdir = tempfile.mkdtemp(prefix=TMP_PREFIX + self.prefix)
        return self._tmpdir

    def _resolvers_for(self, node: Node) -> list:
        if node.name in self._resolver_override:
            return list(self._resolver_override[node.name])
        if self.dns is None:
            return []
        servers = []
        if node.ips:
            servers.append(DNS_IP)
        if node.ips6 and self.dns.ips6:
            servers.append(DNS_IP6)
        return servers

    def _write_resolv(self, node: Node) -> None:
        """(Re)write ``/etc/netns/<ns>/resolv.conf`` when ``node`` has a lab resolver.

        A node that had one and has none any more (a host moved off a NAT64 site, unplugged)
        gets a resolv.conf without a nameserver: the file is rewritten in place, so processes
        already running in the namespace see the change too.
        """
        servers = self._resolvers_for(node)
        if servers == node.resolvers:
            return
        d = os.path.join(ETC_NETNS, node.ns)
        if d not in self._etc_dirs:
            self._etc_dirs.append(d)             # registered first: teardown removes it
        os.makedirs(d, exist_ok=True)
        if servers:
            text = (f"# natlab {self.prefix}: the lab's resolver (removed at lab teardown)\n"
                    + "".join(f"nameserver {a}\n" for a in servers)
                    + "options timeout:1 attempts:2\n")
        else:
            text = f"# natlab {self.prefix}: no resolver on this node's network now\n"
        # Written in place (no temp file: ip netns exec bind-mounts every entry of the dir).
        path = os.path.join(d, "resolv.conf")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        node.resolvers = servers

    # -- public segment ----------------------------------------------------------------------

    def add_public_host(self, name: str, ips: Optional[Sequence[str]] = None, *,
                        ipv6: bool = False, ips6: Optional[Sequence[str]] = None) -> Node:
        """A host directly on 203.0.113.0/24 with the given (or next free .200+) addresses.

        ``ipv6=True``: also the IPv6 twin of each address (``public_ip6``: 203.0.113.N ->
        2001:db8:0:ff::N); ``ips6``: explicit IPv6 addresses in 2001:db8:0:ff::/64 instead
        (``ips=[]`` with ``ips6`` makes an IPv6-only public host).
        """
        if ips is None:
            ips = [f"203.0.113.{self._next_public_host}"]
            self._next_public_host += 1
        for a in ips:
            if ipaddress.ip_address(a) not in PUBLIC_NET:
                raise ValueError(f"{a} is not in {PUBLIC_NET}")
        if ips6 is None:
            ips6 = [public_ip6(a) for a in ips] if ipv6 else []
        ips6 = list(ips6)
        if ips6:
            check_ipv6_prerequisites()
        node = self._add_ns(name, "public", ipv6=bool(ips6))
        self._attach_public(node, "eth0")
        self._addr_up(node.ns, "eth0", ips, 24)
        node.ips = list(ips)
        self._public_link(node, "eth0", node.ip)
        if ips6:
            self._public6(node, "eth0", ips6)
            node.ips6 = ips6
        self._write_resolv(node)
        return node

    def add_server(self, name: str = "server", ips: Sequence[str] = SERVER_IPS, *,
                   ipv6: bool = False) -> Node:
        """The STUN-server host: two public addresses (RFC 5780 needs an alternate IP).

        ``ipv6=True``: also 2001:db8:0:ff::10 and ::11 (``server.ips6``, ``server.ip6``).
        """
        return self.add_public_host(name, ips, ipv6=ipv6)

    # -- NAT sites ---------------------------------------------------------------------------

    def add_site(self, name: str, nat: str, *, hosts: Optional[int] = None,
                 host_port: int = 40000, blocked_peers: Iterable[str] = (),
                 pin: bool = True, ipv6: bool = False, v4nat: Optional[str] = None,
                 nat64_prefix: str = NAT64_WKP,
                 port_mapping: Optional[Iterable[str]] = None) -> Site:
        """Build a NAT site of type ``nat`` (one of ``NAT_TYPES`` or ``V6_SITE_TYPES``).

        ``hosts``: number of hosts (default 2 for ``same-lan``, else 1).
        ``host_port``: the hosts' UDP port.  Host i's ``host_port`` is pinned (static SNAT)
        to public port ``host_port + i`` on EIM routers, and for ``full-cone`` also DNAT'ed
        back from it.  ``pin=False`` leaves plain masquerade (not allowed for full-cone).
        ``blocked_peers``: public IPs whose UDP the ``udp-blocked-to-peer`` router drops.
        Node names: ``<name>-h<i>`` for hosts, ``<name>-r`` for the router (``double``:
        ``<name>-ri`` inner, ``<name>-ro`` outer).

        IPv6 (site k's LAN is 2001:db8:k::/64, router ::1, hosts ::2, ::3, ...; the router WAN
        is ``public_ip6(<site's public IPv4>)``; ``blocked_peers`` may hold IPv6 addresses, and
        on ``v6-firewall``/``v6-only-nat64`` sites any given ones are dropped like
        ``udp-blocked-to-peer`` does -- IPv4 ones on the NAT64's IPv4 side):

        * ``ipv6=True`` on an IPv4 type (not ``double``): dual stack -- the IPv4 NAT as usual
          plus the hosts' global IPv6 addresses behind the router's stateful IPv6 firewall
          (``nft_ruleset6``); ``none``: the hosts get their public twins (no firewall).
        * ``dual-stack``: the same as ``v4nat`` (default ``port-restricted``) with
          ``ipv6=True``, but ``site.nat == "dual-stack"``.
        * ``v6-firewall``: IPv6-only hosts behind the firewall; no IPv4 anywhere on the site.
        * ``v6-only-nat64``: IPv6-only hosts; the router runs tayga (NAT64 from
          ``nat64_prefix``, default 64:ff9b::/96, to its public IPv4 address, host i's port
          ``host_port`` pinned to ``host_port + i``) and unbound (DNS64 at 2001:db8:k::1, the
          hosts' only resolver, forwarding the lab zone to ``add_dns``'s server).

        ``port_mapping``: a port-mapping gateway on the router -- a real miniupnpd answering
        the protocols given, any of ``PORT_MAPPING_PROTOCOLS`` (``"natpmp"``, ``"pcp"``,
        ``"upnp"``; a single string is one protocol).  Only for ``PORT_MAPPING_NATS``
        (``port-restricted``, ``symmetric``, ``symmetric-seq``; one router, IPv4 only).  Such a
        site's WAN address is the routable 11.0.113.(20+10(k-1)) instead of 203.0.113.x
        (``site.public_ip``; miniupnpd refuses to map on a reserved address); ``()`` gives
        that address without a miniupnpd.  NAT-PMP and PCP share miniupnpd's port 5351:
        with only one of them, the router drops the other's requests (a ``table ip
        natlab_pm``), so they get no answer.  See ``_start_miniupnpd`` and README.md.
        """
        if nat in V6_SITE_TYPES:
            if nat == "dual-stack":
                v4 = v4nat or "port-restricted"
                ipv6 = True
            else:
                if v4nat is not None:
                    raise ValueError(f"{nat} has no IPv4 NAT (v4nat)")
                v4 = None
        elif nat in NAT_TYPES:
            if v4nat is not None:
                raise ValueError("v4nat= is for 'dual-stack' sites")
            v4 = nat
        else:
            raise ValueError(f"unknown NAT type {nat!r}; expected one of "
                             f"{NAT_TYPES + V6_SITE_TYPES}")
        if v4 is not None and v4 not in NAT_TYPES:
            raise ValueError(f"unknown IPv4 NAT type {v4!r}; expected one of {NAT_TYPES}")
        if v4 == "double" and ipv6:
            raise ValueError("IPv6 is not supported on 'double' sites")
        pm = None
        if port_mapping is not None:
            given = ((port_mapping,) if isinstance(port_mapping, str)
                     else tuple(port_mapping))
            unknown = [p for p in given if p not in PORT_MAPPING_PROTOCOLS]
            if unknown:
                raise ValueError(f"unknown port_mapping protocol(s) {unknown}; expected some "
                                 f"of {PORT_MAPPING_PROTOCOLS}")
            if nat not in PORT_MAPPING_NATS:
                raise ValueError(f"port_mapping needs one of {PORT_MAPPING_NATS} (one IPv4 "
                                 f"router), not {nat!r}")
            if ipv6:
                raise ValueError("port_mapping sites are IPv4-only (no ipv6=True)")
            pm = tuple(p for p in PORT_MAPPING_PROTOCOLS if p in given)
            if pm:
                check_port_mapping_prerequisites()
        if v4 is None or ipv6:
            check_ipv6_prerequisites(nat64=(nat == "v6-only-nat64"))
        if name in self.sites:
            raise ValueError(f"site {name!r} already exists")
        blocked_peers = tuple(blocked_peers)
        blocked6 = tuple(a for a in blocked_peers if _family(a) == 6)
        if v4 == "udp-blocked-to-peer" and not blocked_peers:
            raise ValueError("udp-blocked-to-peer needs blocked_peers")
        if v4 == "full-cone" and not pin:
            raise ValueError("full-cone needs pin=True (the DNAT is the pinned port)")
        nhosts = hosts if hosts is not None else (2 if v4 == "same-lan" else 1)
        if nhosts < 1:
            raise ValueError("a site needs at least one host")
        k = len(self.sites) + 1
        if k > 18:
            raise ValueError("too many sites for the address plan")
        base = 20 + 10 * (k - 1)
        public_ip = f"{PM_NET.network_address + base}" if pm is not None else f"203.0.113.{base}"

        if v4 is None:
            return self._add_v6only_site(name, nat, nhosts, k, public_ip, host_port,
                                         blocked_peers, nat64_prefix)

        if v4 == "none":
            if nhosts > 9:
                raise ValueError("at most 9 hosts on a 'none' site")
            hosts_ = []
            for i in range(nhosts):
                h = self.add_public_host(f"{name}-h{i}", [f"203.0.113.{base + i}"],
                                         ipv6=ipv6)
                h.role = "host"
                hosts_.append(h)
            site = Site(name, nat, hosts_, [], public_ip, host_port,
                        {h.name: host_port for h in hosts_}, v4nat=v4, ipv6=ipv6)
            self._register_site(site, pin, hosts_)
            self.sites[name] = site
            return site

        lan_net = f"10.0.{k}"
        lan6 = f"2001:db8:{k}::" if ipv6 else None
        routers = []
        if v4 == "double":
            cgn = f"100.64.{k}"
            inner = self._add_router(f"{name}-ri", wan_ip=f"{cgn}.2", wan_plen=24,
                                     lan_ip=f"{lan_net}.1", wan_gateway=f"{cgn}.1")
            outer = self._add_router(f"{name}-ro", wan_ip=public_ip, wan_plen=24,
                                     lan_ip=f"{cgn}.1", public=True)
            # inner WAN <-> outer LAN bridge
            self._link(inner.ns, "wan0", outer.ns, "h0")
            self._ipn(outer.ns, "link", "set", "h0", "master", "lan0")
            self._ipn(outer.ns, "link", "set", "h0", "up")
            self._addr_up(inner.ns, "wan0", [inner.wan_ip], 24)
            self._ipn(inner.ns, "route", "add", "default", "via", f"{cgn}.1")
            routers = [inner, outer]
        else:
            routers = [self._add_router(
                f"{name}-r", wan_ip=public_ip, wan_plen=24, lan_ip=f"{lan_net}.1", public=True,
                wan_ip6=public_ip6(public_ip) if ipv6 else None,
                lan_ip6=lan6 + "1" if ipv6 else None)]

        hosts_ = []
        for i in range(nhosts):
            h = self._add_ns(f"{name}-h{i}", "host", ipv6=ipv6)
            ip = f"{lan_net}.{2 + i}"
            self._link(h.ns, "eth0", routers[0].ns, f"h{i}")
            self._ipn(routers[0].ns, "link", "set", f"h{i}", "master", "lan0")
            self._ipn(routers[0].ns, "link", "set", f"h{i}", "up")
            self._addr_up(h.ns, "eth0", [ip], 24)
            self._ipn(h.ns, "route", "add", "default", "via", f"{lan_net}.1")
            h.ips = [ip]
            if ipv6:
                h.ips6 = [f"{lan6}{2 + i}"]
                self._addr6_up(h.ns, "eth0", h.ips6)
                self._ipn(h.ns, "-6", "route", "add", "default", "via", routers[0].lan_ip6)
            hosts_.append(h)

        # Rulesets (pins by host index: _nat_rules).
        site = Site(name, nat, hosts_, routers, public_ip, host_port, {},
                    blocked_peers, v4nat=v4, ipv6=ipv6,
                    prefix6=lan6 + "/64" if ipv6 else None, port_mapping=pm)
        self._register_site(site, pin, hosts_)
        rulesets, site.public_ports = self._nat_rules(site)
        for router, rules in rulesets:
            self._load_rules(router, rules)
        if pm:
            self.sites[name] = site         # registered first: describe() in errors shows it
            self._start_miniupnpd(site)
        if ipv6:
            self._load_rules6(routers[0], nft_ruleset6(
                blocked_peers=blocked6 if v4 == "udp-blocked-to-peer" else (),
                block_udp=(v4 == "udp-blocked")))
            self._add_route6(lan6 + "/64", routers[0])

        self.sites[name] = site
        for n in hosts_ + routers:
            self._write_resolv(n)
        return site

    def _add_v6only_site(self, name: str, nat: str, nhosts: int, k: int, public_ip: str,
                         host_port: int, blocked_peers: tuple, nat64_prefix: str) -> Site:
        """``v6-firewall`` and ``v6-only-nat64`` (see ``add_site``)."""
        nat64 = nat == "v6-only-nat64"
        blocked6 = tuple(a for a in blocked_peers if _family(a) == 6)
        if len(blocked6) != len(blocked_peers) and not nat64:
            raise ValueError("a v6-firewall site has no IPv4 to block")
        if nat64:
            net = ipaddress.ip_network(nat64_prefix)
            if net.version != 6 or net.prefixlen != 96:
                raise ValueError(f"nat64_prefix {nat64_prefix} is not an IPv6 /96")
            nat64_prefix = str(net)
        lan6 = f"2001:db8:{k}::"
        r = self._add_router(f"{name}-r", wan_ip=public_ip if nat64 else None, wan_plen=24,
                             lan_ip=None, public=True, wan_ip6=public_ip6(public_ip),
                             lan_ip6=lan6 + "1")
        hosts_ = []
        for i in range(nhosts):
            h = self._add_ns(f"{name}-h{i}", "host", ipv6=True)
            self._link(h.ns, "eth0", r.ns, f"h{i}")
            self._ipn(r.ns, "link", "set", f"h{i}", "master", "lan0")
            self._ipn(r.ns, "link", "set", f"h{i}", "up")
            h.ips6 = [f"{lan6}{2 + i}"]
            self._addr6_up(h.ns, "eth0", h.ips6)
            self._ipn(h.ns, "-6", "route", "add", "default", "via", r.lan_ip6)
            hosts_.append(h)
        site = Site(name, nat, hosts_, [r], public_ip if nat64 else None, host_port, {},
                    blocked_peers, v4nat=None, ipv6=True, prefix6=lan6 + "/64",
                    nat64_prefix=nat64_prefix if nat64 else None)
        self._register_site(site, True, hosts_)
        self.sites[name] = site
        if nat64:
            self._start_nat64(site, k)
        else:
            self._load_rules6(r, nft_ruleset6(blocked_peers=blocked6))
        self._add_route6(site.prefix6, r)
        for n in hosts_ + [r]:
            self._write_resolv(n)
        return site

    def _start_nat64(self, site: Site, k: int) -> None:
        """tayga + unbound DNS64 on ``site``'s router (see README, "IPv6").

        tayga 0.9.2 refuses to translate the well-known prefix to RFC 5737 addresses (the lab's
        "public" 203.0.113.0/24; RFC 6052 section 3.1), so with 64:ff9b::/96 tayga itself
        runs on a network-specific prefix 2001:db8:k:64::/96 and the router maps the
        well-known prefix onto it (``dnat ip6 prefix to``, conntrack maps the answers back):
        the hosts only ever see 64:ff9b::/96.  Any other /96 is tayga's own prefix.
        """
        r = site.router
        public = site.nat64_prefix
        wkp = ipaddress.ip_network(public) == ipaddress.ip_network(NAT64_WKP)
        xlat = f"2001:db8:{k}:64::/96" if wkp else public
        conf = os.path.join(self._tmp(), f"{r.name}-tayga.conf")
        lines = ["tun-device nat64", f"ipv4-addr {NAT64_POOL}.1", f"prefix {xlat}",
                 f"dynamic-pool {NAT64_POOL}.0/24"]
        lines += [f"map {NAT64_POOL}.{2 + i} {h.ip6}" for i, h in enumerate(site.hosts)]
        with open(conf, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        cp = self.run(r, [_TAYGA, "--mktun", "-c", conf], timeout=10)
        if cp.returncode != 0:
            raise LabError(f"tayga --mktun in {r.ns} failed ({cp.returncode}): "
                           f"{(cp.stdout + cp.stderr).strip()}")
        self._ipn(r.ns, "link", "set", "nat64", "up")
        self._ipn(r.ns, "route", "add", f"{NAT64_POOL}.0/24", "dev", "nat64")
        self._ipn(r.ns, "-6", "route", "add", xlat, "dev", "nat64")
        site.public_ports = {h.name: site.host_port + i for i, h in enumerate(site.hosts)}
        self._load_rules(r, nft_ruleset("eim", pins=[
            (f"{NAT64_POOL}.{2 + i}", site.host_port, site.public_ip, site.host_port + i)
            for i in range(len(site.hosts))],
            blocked_peers=[a for a in site.blocked_peers if _family(a) == 4]))
        self._load_rules6(r, nft_ruleset6(
            blocked_peers=[a for a in site.blocked_peers if _family(a) == 6],
            nat64_map=(public, xlat) if wkp else None))
        # tayga -d logs to stdout through stdio: line-buffer it so the ready line arrives.
        argv = [_TAYGA, "-d", "-c", conf]
        if os.path.isabs(_STDBUF):
            argv = [_STDBUF, "-oL", *argv]
        proc = self.spawn(r, argv)
        wait_for_line(proc, r"dynamically-assigned mappings", 10)
        # DNS64: the hosts' only resolver; the lab zone and ipv4only.arpa (RFC 7050) come
        # from the lab DNS server (add_dns), whenever it exists.
        site.dns64 = r.lan_ip6
        self._start_unbound(r, "dns64", [r.lan_ip6], "dns64 iterator", [
            f"dns64-prefix: {public}",
            'local-zone: "test." nodefault',
        ], [f'stub-zone:\n\tname: "{z}."\n\tstub-addr: {DNS_IP}\n'
            for z in (DNS_ZONE, "ipv4only.arpa")], cache=False)
        for h in site.hosts:
            self._resolver_override[h.name] = [r.lan_ip6]

    #: ``table inet miniupnpd``: the chains miniupnpd's nftables backend fills (it creates
    #: none itself; cf. Debian's /etc/miniupnpd/nft_init.sh, but with policy accept: the
    #: lab's own ``table ip natlab`` does the filtering).  Its base chains jump to the chains
    #: named in the config (``upnp_*``): forward (accept rules per mapping), prerouting (one
    #: DNAT per mapping) and postrouting (SNAT, only for PCP PEER).  Postrouting runs at
    #: ``srcnat - 1``, before the natlab masquerade, as on a real router (OpenWrt's fw4 jumps to
    #: miniupnpd's chain before its masquerade): the first NAT rule that matches a new flow
    #: decides its mapping.  (With 2.3.1 this changes nothing: mappings get no SNAT at all,
    #: and its PEER SNAT rules have source and destination swapped, so they never match the
    #: host's outbound packets -- README.md, "Port-mapping routers".)
    _MINIUPNPD_TABLE = (
        "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n"
        "\t\tjump forward_miniupnpd\n\t}\n"
        "\tchain forward_miniupnpd {\n\t}\n"
        "\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        "\t\tjump prerouting_miniupnpd\n\t}\n"
        "\tchain prerouting_miniupnpd {\n\t}\n"
        "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat - 1; "
        "policy accept;\n\t\tjump postrouting_miniupnpd\n\t}\n"
        "\tchain postrouting_miniupnpd {\n\t}\n")

    def _start_miniupnpd(self, site: Site, timeout: float = 10.0) -> None:
        """Run a real miniupnpd (nftables backend) on ``site``'s router for the protocols in
        ``site.port_mapping``; returns once it listens (its own log lines, on stderr).

        External interface ``wan0`` (the routable ``site.public_ip``), listening on ``lan0``
        (``10.0.k.1``: NAT-PMP/PCP on UDP 5351, SSDP on 239.255.255.250:1900, UPnP over HTTP
        on ``site.upnp_port``), secure mode (a host maps only to itself), LAN hosts may map
        ports 1024-65535 to external ports 1024-65535, nothing else.  ``enable_natpmp`` turns
        on NAT-PMP and PCP together; with only one of them wanted a ``table ip natlab_pm``
        drops the other's requests on the router's input (first payload byte = version: 0
        NAT-PMP, 2 PCP).
        """
        r = site.router
        pm = site.port_mapping
        want_pmp, want_pcp, want_upnp = ("natpmp" in pm), ("pcp" in pm), ("upnp" in pm)
        self.add_table(r, "miniupnpd", self._MINIUPNPD_TABLE, family="inet")
        if want_pmp != want_pcp:
            version = 2 if want_pmp else 0      # the version byte of the unwanted protocol
            self.add_table(r, "natlab_pm", (
                "\tchain input {\n\t\ttype filter hook input priority filter - 1; "
                "policy accept;\n"
                f'\t\tiifname "lan0" udp dport {NATPMP_PORT} @th,64,8 == {version} counter drop\n'
                "\t}\n"))
        tmp = self._tmp()
        conf = os.path.join(tmp, f"{r.name}-miniupnpd.conf")
        yn = {True: "yes", False: "no"}
        lines = [
            "ext_ifname=wan0", "listening_ip=lan0", "ipv6_disable=yes",
            f"enable_natpmp={yn[want_pmp or want_pcp]}", f"enable_upnp={yn[want_upnp]}",
            "http_port=0", "secure_mode=yes", "system_uptime=no",
            f"uuid={uuid.uuid5(uuid.NAMESPACE_URL, 'natlab:' + r.ns)}",
            "friendly_name=natlab " + site.name,
            "upnp_table_name=miniupnpd", "upnp_nat_table_name=miniupnpd",
            "upnp_forward_chain=forward_miniupnpd", "upnp_nat_chain=prerouting_miniupnpd",
            "upnp_nat_postrouting_chain=postrouting_miniupnpd",
            "allow 1024-65535 10.0.0.0/8 1024-65535",
            "deny 0-65535 0.0.0.0/0 0-65535",
        ]
        with open(conf, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        # -d: foreground, every log line also on stderr (LOG_PERROR).
        proc = self.spawn(r, [_MINIUPNPD, "-f", conf, "-d",
                              "-P", os.path.join(tmp, f"{r.name}-miniupnpd.pid")])
        site.miniupnpd = proc
        deadline = time.monotonic() + timeout
        if want_upnp:
            _, m = wait_for_match(proc, r"HTTP listening on port (\d+)", timeout,
                                  stream="stderr")
            site.upnp_port = int(m.group(1))
        if want_pmp or want_pcp:
            # Logged after the SSDP sockets are open, just before the main loop.
            wait_for_match(proc, rf"Listening for NAT-PMP/PCP traffic on port {NATPMP_PORT}",
                           max(0.0, deadline - time.monotonic()), stream="stderr")
        elif want_upnp:
            # UPnP alone logs nothing once its SSDP socket is open: ask it (M-SEARCH from the
            # router itself, looped back on lan0) until it answers.
            left = max(0.0, deadline - time.monotonic())
            cp = self.run(r, [PYTHON, "-c", _SSDP_PING, r.lan_ip, str(left)], timeout=left + 5)
            if cp.returncode != 0:
                raise LabError(f"miniupnpd on {r.name} did not answer SSDP within {timeout}s"
                               f"\n{_describe(proc)}")

    def port_mappings(self, site: Site) -> list:
        """The port mappings miniupnpd has installed on ``site``'s router right now: one dict
        per DNAT rule of its ``prerouting_miniupnpd`` chain, in rule order,
        ``{"proto": "udp"|"tcp", "external_port": E, "internal": "10.0.k.2:P"}``."""
        if not site.port_mapping:
            raise ValueError(f"site {site.name} has no miniupnpd (add_site port_mapping=)")
        cp = _cmd([_IP, "netns", "exec", site.router.ns, _NFT, "-j", "list", "chain", "inet",
                   "miniupnpd", "prerouting_miniupnpd"])
        out = []
        for item in json.loads(cp.stdout).get("nftables", []):
            rule = item.get("rule")
            if not rule:
                continue
            proto = port = dnat = None
            for e in rule.get("expr", []):
                m = e.get("match")
                if m:
                    left = m.get("left", {}).get("payload", {})
                    # miniupnpd matches the protocol as a raw byte: @nh,72,8 (17 udp, 6 tcp)
                    if left.get("base") == "nh" and left.get("offset") == 72:
                        proto = {17: "udp", 6: "tcp"}.get(m.get("right"), m.get("right"))
                    elif left.get("field") == "dport":
                        port = m.get("right")
                        proto = proto or left.get("protocol")
                elif "dnat" in e:
                    dnat = e["dnat"]
            if dnat is not None and port is not None:
                out.append({"proto": proto, "external_port": int(port),
                            "internal": f"{dnat.get('addr')}:{dnat.get('port')}"})
        return out

    def _add_router(self, name: str, *, wan_ip: Optional[str], wan_plen: int,
                    lan_ip: Optional[str], public: bool = False,
                    wan_gateway: Optional[str] = None, wan_ip6: Optional[str] = None,
                    lan_ip6: Optional[str] = None) -> Node:
        ipv6 = bool(wan_ip6 or lan_ip6)
        r = self._add_ns(name, "router", forward=True, ipv6=ipv6)
        r.wan_ip, r.lan_ip, r.ips = wan_ip, lan_ip, [wan_ip] if wan_ip else []
        # The LAN bridge gets a MAC address of its own.  Without one a Linux bridge takes the
        # lowest MAC of its ports and changes it whenever a port with a lower one joins or
        # that port leaves (move_host / plug / unplug): the LAN hosts' neighbour entries of
        # the router would still hold the old MAC, their frames to it would be dropped
        # (PACKET_OTHERHOST: not the bridge's address), and they would lose the router until
        # the entry leaves REACHABLE (15-45 s; no gratuitous ARP / unsolicited NA is sent).
        self._ipn(r.ns, "link", "add", "lan0", "address", _fixed_mac(name), "type", "bridge")
        self._addr_up(r.ns, "lan0", [lan_ip] if lan_ip else [], 24)
        if public:
            self._attach_public(r, "wan0")
            self._addr_up(r.ns, "wan0", [wan_ip] if wan_ip else [], wan_plen)
            self._public_link(r, "wan0", wan_ip)
        if lan_ip6:
            r.lan_ip6 = lan_ip6
            self._addr6_up(r.ns, "lan0", [lan_ip6])
        if wan_ip6:
            r.wan_ip6, r.ips6 = wan_ip6, [wan_ip6]
            self._public6(r, "wan0", [wan_ip6])
        return r

    def _load_rules(self, router: Node, rules: str) -> None:
        _cmd([_IP, "netns", "exec", router.ns, _NFT, "-f", "-"], input=rules)
        router.nft_rules = rules

    def _load_rules6(self, router: Node, rules: str) -> None:
        _cmd([_IP, "netns", "exec", router.ns, _NFT, "-f", "-"], input=rules)
        router.nft_rules6 = rules

    # -- DNS ---------------------------------------------------------------------------------

    def _start_unbound(self, node: Node, tag: str, interfaces: Sequence[str], modules: str,
                       server: Sequence[str], tail: Sequence[str], *,
                       cache: bool = True) -> subprocess.Popen:
        """Run an unbound (foreground, config in the lab's temp dir) in ``node``; wait until
        it serves.  Remote control over a unix socket (``_unbound_control``)."""
        tmp = self._tmp()
        conf = os.path.join(tmp, f"{node.name}-{tag}.conf")
        opts = ["verbosity: 1", "use-syslog: no", 'logfile: ""', 'chroot: ""', 'username: ""',
                f'directory: "{tmp}"', f'pidfile: "{tmp}/{node.name}-{tag}.pid"',
                "do-daemonize: no", "interface-automatic: no",
                *[f"interface: {a}" for a in interfaces], "port: 53",
                "do-ip4: yes", f"do-ip6: {'yes' if node.ips6 else 'no'}",
                "do-udp: yes", "do-tcp: yes",
                "access-control: 0.0.0.0/0 allow", "access-control: ::/0 allow",
                "num-threads: 1", "so-reuseport: no", "outgoing-range: 64",
                "num-queries-per-thread: 32", "msg-cache-size: 1m", "rrset-cache-size: 1m",
                "qname-minimisation: no", "infra-keep-probing: yes", "infra-host-ttl: 10",
                f'module-config: "{modules}"']
        if not cache:
            # Lab records change under test (dns_set flushes too): keep nothing for long.
            opts += ["cache-max-ttl: 1", "cache-max-negative-ttl: 1"]
        text = ("server:\n" + "".join(f"\t{o}\n" for o in [*opts, *server])
                + "".join(tail)
                + "remote-control:\n\tcontrol-enable: yes\n"
                f'\tcontrol-interface: "{tmp}/{node.name}-{tag}.ctl"\n'
                "\tcontrol-use-cert: no\n")
        with open(conf, "w") as f:
            f.write(text)
        proc = self.spawn(node, [_UNBOUND, "-d", "-c", conf])
        wait_for_line(proc, r"start of service", 10, stream="stderr")
        self._unbounds.append((node, tag, conf))
        return proc

    def _unbound_control(self, node: Node, conf: str, *args: str) -> str:
        cp = self.run(node, [_UNBOUND_CONTROL, "-c", conf, *args], timeout=10)
        if cp.returncode != 0:
            raise LabError(f"unbound-control {' '.join(args)} in {node.ns} failed "
                           f"({cp.returncode}): {(cp.stdout + cp.stderr).strip()}")
        return cp.stdout

    @staticmethod
    def dns_name(name: str) -> str:
        """``"relay"`` -> ``"relay.natlab.test"``; full names (with a dot) are kept."""
        name = name.rstrip(".")
        full = name if "." in name else f"{name}.{DNS_ZONE}"
        if full != DNS_ZONE and not full.endswith("." + DNS_ZONE):
            raise ValueError(f"{name!r} is not in the lab zone {DNS_ZONE}")
        return full

    @staticmethod
    def _rr(fqdn: str, addr: str, ttl: int = 30) -> str:
        return f"{fqdn}. {ttl} IN {'A' if _family(addr) == 4 else 'AAAA'} {addr}"

    def add_dns(self, records: Optional[dict] = None, *, ipv6: bool = True,
                name: str = "dns") -> Node:
        """The lab's DNS server: an unbound authoritative for ``natlab.test`` (``local-data``).

        A public node at ``DNS_IP`` (203.0.113.5) and, with ``ipv6``, ``DNS_IP6``
        (2001:db8:0:ff::5).  ``records``: name -> addresses (IPv4 -> A, IPv6 -> AAAA;
        ``"relay"`` means ``relay.natlab.test``).  ``ipv4only.arpa`` has its RFC 7050 A records
        (192.0.0.170, .171), so NAT64 prefix discovery works behind a DNS64.  From now on every
        namespace of the lab with an address (existing and future ones) resolves through it:
        ``/etc/netns/<ns>/resolv.conf`` (``node.resolvers``) names ``DNS_IP`` if the node has
        IPv4 and ``DNS_IP6`` if it has IPv6; ``v6-only-nat64`` hosts use their DNS64 instead,
        which asks this server.  Change records later with ``dns_set``.
        """
        if ipv6:
            check_ipv6_prerequisites(dns=True)
        else:
            check_prerequisites()
            if not os.path.isabs(_UNBOUND) or not os.path.isabs(_UNBOUND_CONTROL):
                raise unittest.SkipTest("natlab DNS needs unbound and unbound-control (Debian"
                                        " package 'unbound'; scripts/setup-deps installs it)")
        if self.dns is not None:
            raise ValueError("the lab already has a DNS server")
        recs = {self.dns_name(n): [str(ipaddress.ip_address(a)) for a in addrs]
                for n, addrs in (records or {}).items()}
        node = self.add_public_host(name, [DNS_IP], ips6=[DNS_IP6] if ipv6 else [])
        soa = (f"{DNS_ZONE}. 3600 IN SOA ns.{DNS_ZONE}. hostmaster.{DNS_ZONE}. "
               "1 3600 600 86400 1")
        server = [f'local-zone: "{DNS_ZONE}." static', f'local-data: "{soa}"']
        server += [f'local-data: "{self._rr(fq, a)}"' for fq, addrs in recs.items()
                   for a in addrs]
        server += ['local-zone: "ipv4only.arpa." static',
                   'local-data: "ipv4only.arpa. 3600 IN A 192.0.0.170"',
                   'local-data: "ipv4only.arpa. 3600 IN A 192.0.0.171"']
        self._start_unbound(node, "dns", node.ips + node.ips6, "iterator", server, [])
        self.dns = node
        self.dns_records = recs
        for n in self.nodes.values():
            self._write_resolv(n)
        return node

    def dns_set(self, name: str, addrs: Sequence[str]) -> None:
        """Replace the records of ``name`` on the lab DNS (empty ``addrs``: remove the name)
        and flush it from every DNS64's cache."""
        if self.dns is None:
            raise LabError("the lab has no DNS server (add_dns)")
        fq = self.dns_name(name)
        addrs = [str(ipaddress.ip_address(a)) for a in addrs]
        for node, tag, conf in self._unbounds:
            if tag == "dns":
                self._unbound_control(node, conf, "local_data_remove", fq)
                for a in addrs:
                    self._unbound_control(node, conf, "local_data", self._rr(fq, a))
        for node, tag, conf in self._unbounds:
            if tag == "dns64":
                self._unbound_control(node, conf, "flush_zone", DNS_ZONE)
                self._unbound_control(node, conf, "flush_infra", "all")
        if addrs:
            self.dns_records[fq] = addrs
        else:
            self.dns_records.pop(fq, None)

    def resolvers(self, node: NsLike) -> list:
        """The nameserver addresses ``node``'s resolv.conf names (empty: the machine's, or
        none at all for a host that had one and moved on -- ``plug``)."""
        n = node if isinstance(node, Node) else self.nodes[node]
        return list(n.resolvers)

    # -- black holes -------------------------------------------------------------------------

    def blackhole(self, target: Union[Node, str, Iterable[str]], family: Optional[int] = None,
                  *, name: Optional[str] = None) -> str:
        """Silently drop every packet to or from some addresses on the public segment.

        ``target``: an address, a list of addresses, or a Node (its ``ips`` and ``ips6``);
        ``family`` (4 or 6) keeps only that family -- e.g. ``blackhole(server, 6)`` leaves the
        server reachable over IPv4 only, with IPv6 packets vanishing (no ICMP error, no
        reset: what a Happy-Eyeballs client meets on a broken IPv6 path).  A ``bridge`` table
        in the ``inet`` namespace (neighbour discovery still passes, so the loss is silent).
        Returns the table name for ``unblackhole``.
        """
        if isinstance(target, Node):
            addrs = list(target.ips) + list(target.ips6)
        elif isinstance(target, str):
            addrs = [target]
        else:
            addrs = list(target)
        addrs = [str(ipaddress.ip_address(a)) for a in addrs]
        if family is not None:
            addrs = [a for a in addrs if _family(a) == family]
        if not addrs:
            raise ValueError("blackhole: no address of that family")
        if name is None:
            n = 0
            while f"natlab_bh{n}" in self.blackholes:
                n += 1
            name = f"natlab_bh{n}"
        v4 = ", ".join(sorted(a for a in addrs if _family(a) == 4))
        v6 = ", ".join(sorted(a for a in addrs if _family(a) == 6))
        rules = []
        if v6:
            rules.append("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept")
            rules += [f"ip6 daddr {{ {v6} }} drop", f"ip6 saddr {{ {v6} }} drop"]
        if v4:
            rules += [f"ip daddr {{ {v4} }} drop", f"ip saddr {{ {v4} }} drop"]
        body = ("\tchain forward {\n"
                "\t\ttype filter hook forward priority filter; policy accept;\n"
                + "".join(f"\t\t{r}\n" for r in rules) + "\t}\n")
        self.add_table(self.internet, name, body, family="bridge")
        self.blackholes[name] = addrs
        return name

    def unblackhole(self, name: str) -> None:
        """Undo ``blackhole``."""
        self.remove_table(self.internet, name)
        self.blackholes.pop(name, None)

    def next_site_public_ip(self, ahead: int = 0, *, port_mapping: bool = False) -> str:
        """The public address the ``ahead``-th next ``add_site`` call will give its site
        (``port_mapping``: if that call has ``port_mapping=``: the 11.0.113.x twin).

        (Lets a ``udp-blocked-to-peer`` site name a peer site that does not exist yet.)
        """
        k = len(self.sites) + 1 + ahead
        if port_mapping:
            return str(PM_NET.network_address + 20 + 10 * (k - 1))
        return f"203.0.113.{20 + 10 * (k - 1)}"

    # -- moving hosts between sites (a phone changing networks) ------------------------------

    def move_host(self, host: Node, to_site: Site) -> None:
        """Move LAN host ``host`` onto ``to_site``'s network, keeping its namespace.

        A phone that leaves one network for another in the middle of a call: processes in
        the host's namespace keep running and keep their sockets (bound to 0.0.0.0 / [::] or
        to a port only); what changes is the host's one link and its addresses.  The same
        as ``unplug`` + ``plug`` with the old site's clean-up done last:

        1. the host's ``eth0`` (its veth into the old LAN bridge, or into ``pub`` for a
           ``none`` site) is deleted -- its old addresses and routes go with it;
        2. ``plug(host, to_site)``: a new ``eth0`` into ``to_site``'s LAN with a fresh
           address (the site's next host index, never one used before on that site), the
           default route(s), the pin on EIM routers (loaded before the link comes up, so
           the host's first packet already gets its pinned port);
        3. the old site's routers drop the host's pin and forget its conntrack entries
           (``nat`` mappings included, layer by layer for ``double``; other hosts' entries
           stay), so no old mapping lingers.

        ``to_site`` may be any site of this lab, the host's own one included (a new address on
        the same network).  Takes some tens of milliseconds (a few ``ip``/``nft`` commands;
        the conntrack clean-up runs in-process over ctnetlink).  See ``plug`` for what the
        host gets on each kind of site and what is not supported.  Raises ``ValueError`` for
        a node that is not a site host, a host that is not plugged in, or a site with no
        room left; nothing is changed then.
        """
        self._require_running()
        self._check_host(host)
        if self._site_of(host) is None:
            raise ValueError(f"host {host.name} is not plugged in (use plug)")
        plan = self._plug_plan(host, to_site)           # validate before touching anything
        old_site, old_addrs, old_index = self._detach(host)
        self._attach(host, to_site, plan)
        self._forget_departed(old_site, old_addrs, old_index,
                              reload_rules=old_site is not to_site)

    def unplug(self, host: Node) -> None:
        """Take ``host`` off its site's network: afterwards it has nothing but ``lo``.

        A total outage (a phone between networks, in a tunnel): ``eth0`` is deleted, with it
        every address and route, so a send fails at once (``ENETUNREACH`` for IPv4; for IPv6
        ``ENETUNREACH`` or ``EADDRNOTAVAIL``) and nothing arrives.  Processes and their
        sockets live on.  The site forgets the host (``site.hosts``, ``site.public_ports``,
        its pin, its conntrack entries on the routers); ``host.ips`` / ``host.ips6`` become
        empty and a lab resolver it had (DNS64) is taken out of its resolv.conf.  ``plug``
        brings it back, on the same site or another.
        """
        self._require_running()
        site, addrs, index = self._detach(host)
        self._write_resolv(host)
        self._forget_departed(site, addrs, index)

    def plug(self, host: Node, site: Site) -> None:
        """Connect an unplugged host (``unplug``) to ``site``'s network.

        The host gets the site's next host index i (indices are never reused, so the
        addresses are always new ones): a veth ``eth0`` into the site's LAN bridge (port
        ``h<i>`` of the innermost router; ``none``: port ``p<n>`` of ``pub``) and

        * IPv4 NAT types (``double`` too): 10.0.k.(2+i) with a default route via the router
          (the inner one for ``double``); on pinned EIM/full-cone sites the router(s) pin the
          host's ``host_port`` to public port ``host_port + i`` (``full-cone``: and DNAT it
          back) exactly as for hosts made by ``add_site``, and ``site.public_port(host)``
          says so; ``symmetric`` / ``pin=False``: plain masquerade as for the others;
        * ``none``: the public address ``public_ip`` + i (at most 9 hosts ever per site);
        * dual stack (``dual-stack`` or ``ipv6=True``): also 2001:db8:k::(2+i) and the IPv6
          default route (``none``: the public twin and routes to every IPv6 site);
        * ``v6-firewall``: only 2001:db8:k::(2+i) (``host.ips == []``);
        * ``v6-only-nat64``: only 2001:db8:k::(2+i), and the site's DNS64 as its resolver.
          Not pinned: tayga's static maps are fixed when the site is made, so a host plugged
          in later gets a dynamic tayga address, and its IPv4 flows are plainly masqueraded
          (the port is kept while it is free): ``site.public_port(host)`` is None.

        IPv6 in the namespace follows the site: enabled (no DAD/RA/SLAAC, as for IPv6 nodes)
        on sites with IPv6, disabled again on IPv4-only ones.  A site's resolver is written
        into the host's resolv.conf in place (running processes see it too).

        Sockets bound to 0.0.0.0 / [::] work on the new network at once.  A socket that was
        ``connect()``-ed keeps the source address the kernel chose at connect time, which is
        gone: its sends fail (``ENETUNREACH`` in a lab run; as on a real device).  Raises ``ValueError`` if the host is
        still plugged in somewhere, ``site`` is not one of this lab's, or it has no address
        left for another host.
        """
        self._require_running()
        plan = self._plug_plan(host, site)
        current = self._site_of(host)
        if current is not None:
            raise ValueError(f"host {host.name} is on site {current.name}: unplug it first "
                             "(or use move_host)")
        self._attach(host, site, plan)

    def _check_host(self, host: Node) -> None:
        if not isinstance(host, Node) or self.nodes.get(host.name) is not host:
            raise ValueError(f"{host!r} is not a node of this lab")
        if host.role != "host":
            raise ValueError(f"{host.name} is a {host.role}, not a site host: only hosts made "
                             "by add_site can be moved")

    def _site_of(self, host: Node) -> Optional[Site]:
        for s in self.sites.values():
            if any(h is host for h in s.hosts):
                return s
        return None

    def _register_site(self, site: Site, pin: bool, hosts: Sequence[Node]) -> None:
        self._site_meta[site.name] = _SiteMeta(pin=pin, next_index=len(hosts),
                                               static=len(hosts))
        for i, h in enumerate(hosts):
            self._slot[h.name] = i

    @staticmethod
    def _has_nat_rules(site: Site) -> bool:
        """Whether the site's ``table ip natlab`` rules depend on its hosts (pins)."""
        return site.v4nat is not None and site.v4nat != "none"

    def _nat_rules(self, site: Site) -> tuple:
        """``([(router, ruleset), ...], public_ports)`` of an IPv4 NAT site: each router
        layer's ``table ip natlab`` with one pin per current host (index i: ``host_port`` to
        public port ``host_port + i``), as ``add_site`` documents."""
        v4 = site.v4nat
        routers = site.routers
        hp = site.host_port
        do_pin = self._site_meta[site.name].pin and v4 not in ("symmetric", "symmetric-seq")
        indices = [self._slot[h.name] for h in site.hosts]
        public_ports = {}
        pins_inner = []
        if do_pin:
            for i, h in zip(indices, site.hosts):
                public_ports[h.name] = hp + i
                pins_inner.append((h.ip, hp, routers[0].wan_ip, hp + i))
        blocked4 = tuple(a for a in site.blocked_peers if _family(a) == 4)
        kind = v4 if v4 in ("symmetric", "symmetric-seq") else "eim"
        out = [(routers[0], nft_ruleset(
            kind, pins=pins_inner, dnat=(v4 == "full-cone"), wan_ip=routers[0].wan_ip,
            accept_dnat=bool(site.port_mapping),
            blocked_peers=blocked4 if v4 == "udp-blocked-to-peer" else (),
            block_udp=(v4 == "udp-blocked")))]
        if v4 == "double":
            pins_outer = ([(routers[0].wan_ip, hp + i, routers[1].wan_ip, hp + i)
                           for i in indices] if do_pin else [])
            out.append((routers[1], nft_ruleset("eim", pins=pins_outer)))
        return out, public_ports

    def _reload_nat_rules(self, site: Site) -> None:
        """Replace the rules of the site's ``table ip natlab``s atomically (one ``nft -f``
        transaction: flush + the new rules; the chains and their hooks stay, so no packet
        ever passes without NAT, and established mappings are kept)."""
        rulesets, site.public_ports = self._nat_rules(site)
        for router, rules in rulesets:
            if rules != router.nft_rules:
                _cmd([_IP, "netns", "exec", router.ns, _NFT, "-f", "-"],
                     input="flush table ip natlab\n" + rules)
                router.nft_rules = rules

    def _plug_plan(self, host: Node, site: Site) -> dict:
        """Validate plugging ``host`` into ``site``; the addresses and link it would get."""
        self._check_host(host)
        if not isinstance(site, Site) or self.sites.get(site.name) is not site:
            raise ValueError(f"{site!r} is not a site of this lab")
        i = self._site_meta[site.name].next_index
        if site.v4nat == "none":
            if i > 8:
                raise ValueError(f"site {site.name} ('none') has no public address left "
                                 "(at most 9 hosts ever)")
            base = int(site.public_ip.rsplit(".", 1)[1])
            ips = [f"203.0.113.{base + i}"]
            ips6 = [public_ip6(ips[0])] if site.ipv6 else []
            routes = [f"route add {prefix} via {via}" for prefix, via, _ in self._v6_routes
                      ] if ips6 else []
            return dict(index=i, ips=ips, ips6=ips6, routes=routes, bridge_ns=self.internet.ns,
                        bridge="pub", port=None)
        if i > 252:
            raise ValueError(f"site {site.name} has no LAN address left")
        r0 = site.routers[0]
        ips = [f"{r0.lan_ip.rsplit('.', 1)[0]}.{2 + i}"] if site.ipv4 else []
        ips6 = [f"{site.prefix6[:-len('/64')]}{2 + i}"] if site.prefix6 else []
        routes = ([f"route add default via {r0.lan_ip}"] if ips else []) + \
                 ([f"route add default via {r0.lan_ip6}"] if ips6 else [])
        return dict(index=i, ips=ips, ips6=ips6, routes=routes, bridge_ns=r0.ns,
                    bridge="lan0", port=f"h{i}")

    def _attach(self, host: Node, site: Site, plan: dict) -> None:
        """``plug`` after validation: the bookkeeping and pins first, then the link."""
        i = plan["index"]
        self._site_meta[site.name].next_index = i + 1
        if (host.ns in self._ns_ipv6) != site.ipv6:
            self._setup_ns(host.ns, ipv6=site.ipv6)
        host.ips, host.ips6 = list(plan["ips"]), list(plan["ips6"])
        self._slot[host.name] = i
        site.hosts.append(host)
        if self._has_nat_rules(site):
            self._reload_nat_rules(site)      # before the link: the pin is there at once
        elif site.v4nat == "none":
            site.public_ports[host.name] = site.host_port
        if site.nat64_prefix:
            self._resolver_override[host.name] = [site.dns64]
        port = plan["port"]
        if port is None:                      # a port of the public bridge
            port = f"p{self._port_count}"
            self._port_count += 1
        _cmd([_IP, "-n", plan["bridge_ns"], "link", "add", port, "up", "master", plan["bridge"],
              "type", "veth", "peer", "name", "eth0", "netns", host.ns])
        batch = ([f"addr add {a}/24 dev eth0" for a in host.ips]
                 + [f"addr add {a}/64 dev eth0 nodad" for a in host.ips6]
                 + ["link set eth0 up"] + plan["routes"])
        if site.v4nat == "none" and host.ips:
            self._public_links.append((host.ns, "eth0"))
            if self._pm_routes:
                batch.append(f"route add {PM_NET} dev eth0")
        _cmd([_IP, "-n", host.ns, "-batch", "-"], input="".join(c + "\n" for c in batch))
        if site.v4nat == "none" and host.ips6:
            self._v6_public.append(host.ns)   # later IPv6 sites add their routes here too
        self._write_resolv(host)

    def _detach(self, host: Node) -> tuple:
        """Delete the host's link and drop it from its site: ``(site, old addresses, index)``.
        The site's routers are not touched yet (``_forget_departed``)."""
        self._check_host(host)
        site = self._site_of(host)
        if site is None:
            raise ValueError(f"host {host.name} is not plugged in")
        _cmd([_IP, "-n", host.ns, "link", "del", "eth0"])   # the peer goes with it
        index = self._slot.pop(host.name)
        site.hosts[:] = [h for h in site.hosts if h is not host]
        addrs = host.ips + host.ips6
        host.ips, host.ips6 = [], []
        site.public_ports.pop(host.name, None)
        if host.ns in self._v6_public:
            self._v6_public.remove(host.ns)
        self._public_links[:] = [x for x in self._public_links if x[0] != host.ns]
        self._resolver_override.pop(host.name, None)
        return site, addrs, index

    def _forget_departed(self, site: Site, addrs: Sequence[str], index: int, *,
                         reload_rules: bool = True) -> None:
        """The old site's side of a departure: its routers drop the host's pin, then every
        conntrack entry from (or DNAT'ed to) the host's old addresses -- on ``double`` the
        outer router's entries of those flows too (found by the inner router's mappings);
        on ``v6-only-nat64`` also the IPv4 side of a host with a static tayga map."""
        if reload_rules and self._has_nat_rules(site):
            self._reload_nat_rules(site)
        if not site.routers:
            return
        specs = [(a, None, None) for a in addrs]
        if site.nat64_prefix and index < self._site_meta[site.name].static:
            specs.append((f"{NAT64_POOL}.{2 + index}", None, None))
        for r in site.routers:
            if not specs:
                break
            specs = _in_netns(r.ns, _ct_forget_here, specs)

    # -- changing a running router -----------------------------------------------------------

    def delay_toward(self, host: Node, dst_ip: str, delay_ms: float,
                     timeout: float = 5.0) -> subprocess.Popen:
        """Delay ``host``'s IPv4 packets toward ``dst_ip`` by ``delay_ms``, one way (the way
        back is not delayed: the round trip between them grows by ``delay_ms``).

        Policy routing in ``host``'s namespace sends them into a TUN device read by
        delay_line.py, which sends each out again ``delay_ms`` later with a firewall mark
        that the main table routes (so NATs and peers see the host's own packets, only
        later).  Once per host; returns the delay line's process (stopped at teardown).
        """
        ns = self.ns_of(host)
        dev, mark, table = "dly0", "0x70", "70"
        for argv in (["tuntap", "add", dev, "mode", "tun"], ["link", "set", dev, "up"],
                     ["route", "add", f"{dst_ip}/32", "dev", dev, "src", host.ip, "table",
                      table],
                     ["rule", "add", "fwmark", mark, "lookup", "main", "priority", "50"],
                     ["rule", "add", "to", f"{dst_ip}/32", "lookup", table, "priority", "60"]):
            self._ipn(ns, *argv)
        proc = self.spawn(host, [PYTHON, DELAY_LINE, "--dev", dev, "--mark", mark,
                                 "--delay-ms", str(delay_ms)])
        wait_for_line(proc, "delaying", timeout)
        return proc

    def add_table(self, router: NsLike, name: str, body: str, *, family: str = "ip") -> str:
        """Load ``table ip <name> { <body> }`` into ``router`` (next to its ``natlab`` table).

        Returns ``name``; ``remove_table`` deletes it again.  A drop in any table's base chain
        drops the packet, so extra tables can only add restrictions or rewrites.
        ``family``: ``ip6``, ``inet`` or ``bridge`` for a table of another family.
        """
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name) or name in ("natlab", "natlab6"):
            raise ValueError(f"bad table name {name!r}")
        if family not in ("ip", "ip6", "inet", "bridge"):
            raise ValueError(f"bad table family {family!r}")
        ns = self.ns_of(router)
        _cmd([_IP, "netns", "exec", ns, _NFT, "-f", "-"],
             input=f"table {family} {name} {{\n{body}}}\n")
        self._tables[(ns, name)] = family
        return name

    def remove_table(self, router: NsLike, name: str) -> None:
        """Delete a table loaded with ``add_table`` / ``block_udp``."""
        ns = self.ns_of(router)
        family = self._tables.pop((ns, name), "ip")
        _cmd([_IP, "netns", "exec", ns, _NFT, "delete", "table", family, name])

    def block_udp(self, router: NsLike, peer_ips: Iterable[str], *,
                  name: str = "natlab_block") -> str:
        """Make ``router`` drop forwarded UDP to and from ``peer_ips`` from now on.

        Like the ``udp-blocked-to-peer`` rules, but added to a running router (a table of its
        own, priority just before the ``natlab`` forward chain): existing conntrack entries
        do not help the packets through.  Returns the table name for ``remove_table``.
        """
        peer_ips = sorted(set(peer_ips))
        if not peer_ips:
            raise ValueError("block_udp needs at least one address")
        peers = ", ".join(a for a in peer_ips if _family(a) == 4)
        peers6 = ", ".join(a for a in peer_ips if _family(a) == 6)
        rules = []
        if peers:
            rules += [f"\t\tip daddr {{ {peers} }} meta l4proto udp drop\n",
                      f"\t\tip saddr {{ {peers} }} meta l4proto udp drop\n"]
        if peers6:     # IPv6 peers: an inet table (IPv4-only calls keep their ip table)
            rules += [f"\t\tip6 daddr {{ {peers6} }} meta l4proto udp drop\n",
                      f"\t\tip6 saddr {{ {peers6} }} meta l4proto udp drop\n"]
        body = ("\tchain forward {\n"
                "\t\ttype filter hook forward priority filter - 1; policy accept;\n"
                + "".join(rules) + "\t}\n")
        return self.add_table(router, name, body, family="inet" if peers6 else "ip")

    def flush_conntrack(self, router: NsLike) -> int:
        """Forget every IPv4 conntrack entry of ``router`` (like ``conntrack -F``).

        Without the ``conntrack`` tool: a ctnetlink delete-all request sent from a stdlib
        helper run inside the namespace (``python3 natlab.py conntrack-flush``).  NAT mappings
        are made anew by the next packet of each flow (a ``symmetric`` router picks a new
        random port: NAT rebinding).  Returns how many entries there were before.
        """
        before = len([ln for ln in self.conntrack(router).splitlines() if ln.strip()])
        cp = self.run(router, [PYTHON, os.path.abspath(__file__), "conntrack-flush"],
                      timeout=10)
        if cp.returncode != 0:
            raise LabError(f"conntrack flush in {self.ns_of(router)} failed "
                           f"({cp.returncode}): {cp.stderr.strip()}")
        return before

    # -- diagnostics -------------------------------------------------------------------------

    def conntrack(self, router: NsLike) -> str:
        """The router's conntrack table (``/proc/net/nf_conntrack`` if present, else empty)."""
        cp = self.run(router, ["cat", "/proc/net/nf_conntrack"], timeout=5)
        return cp.stdout

    def describe(self) -> str:
        """Human-readable summary of the topology (for failure messages)."""
        lines = [f"lab {self.prefix}"]
        for n in self.nodes.values():
            extra = f" wan={n.wan_ip} lan={n.lan_ip}" if n.role == "router" else ""
            if n.ips6:
                extra += f" ips6={n.ips6}"
                if n.role == "router":
                    extra += f" lan6={n.lan_ip6}"
            if n.resolvers:
                extra += f" dns={n.resolvers}"
            lines.append(f"  {n.role:8} {n.name:12} ns={n.ns} ips={n.ips}{extra}")
        for s in self.sites.values():
            extra = ""
            if s.ipv6:
                extra = f" v4nat={s.v4nat} prefix6={s.prefix6}"
                if s.nat64_prefix:
                    extra += f" nat64={s.nat64_prefix} dns64={s.dns64}"
            if s.port_mapping is not None:
                extra += f" port_mapping={','.join(s.port_mapping) or '-'}"
            lines.append(f"  site {s.name}: {s.nat} public={s.public_ip} "
                         f"ports={s.public_ports}{extra}")
        if self.dns is not None:
            lines.append(f"  dns {DNS_ZONE} at {self.dns.ips + self.dns.ips6}: "
                         + ", ".join(f"{k}={v}" for k, v in self.dns_records.items()))
        for name, addrs in self.blackholes.items():
            lines.append(f"  blackhole {name}: {addrs}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# udp_probe.py helpers (the lab's own, binary-independent checks)

PRIMARY_PORT = 3478
ALT_PORT = 3479


def server_endpoints(server: Node, ports: Sequence[int] = (PRIMARY_PORT, ALT_PORT)) -> list:
    """Every ``ip:port`` combination of the server's addresses and ``ports`` (RFC 5780 style)."""
    return [f"{ip}:{port}" for ip in server.ips for port in ports]


def server_endpoints6(server: Node, ports: Sequence[int] = (PRIMARY_PORT, ALT_PORT)) -> list:
    """``server_endpoints`` for the server's IPv6 addresses: ``["[ip6]:port", ...]``."""
    return [hostport(ip, port) for ip in server.ips6 for port in ports]


def start_echo(lab: Lab, node: NsLike, binds: Sequence[str], *, tcp: Sequence[str] = (),
               timeout: float = 5.0) -> subprocess.Popen:
    """Start ``udp_probe.py server`` in ``node`` on ``binds`` and wait for its ``ready``."""
    argv = [PYTHON, UDP_PROBE, "server"]
    for b in binds:
        argv += ["--bind", b]
    for b in tcp:
        argv += ["--tcp", b]
    proc = lab.spawn(node, argv)
    wait_for_line(proc, r"^ready$", timeout)
    return proc


_STUN_PING = """
import os, socket, sys, time
ip, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.1)
while time.monotonic() < deadline:
    s.sendto(bytes.fromhex("00010000" "2112a442") + os.urandom(12), (ip, port))
    try:
        if s.recv(2048)[:2] == bytes.fromhex("0101"):
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
"""


_SSDP_PING = """
import socket, sys, time
lan, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(lan))
s.bind((lan, 0))
s.settimeout(0.1)
msg = (b"M-SEARCH * HTTP/1.1\\r\\nHOST: 239.255.255.250:1900\\r\\n"
       b'MAN: "ssdp:discover"\\r\\nMX: 1\\r\\nST: upnp:rootdevice\\r\\n\\r\\n')
while time.monotonic() < deadline:
    s.sendto(msg, ("239.255.255.250", 1900))
    try:
        if s.recv(2048).startswith(b"HTTP/1.1 200"):
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
"""


def start_coturn(lab: Lab, node: NsLike, ip: str, port: int = 3478, *,
                 timeout: float = 10.0) -> subprocess.Popen:
    """coturn's ``turnserver`` in ``node`` as a plain STUN server (``--stun-only``, no auth)
    on ``ip:port``; returns once it answers a Binding request (asked from ``node``)."""
    tmp = lab._tmp()  # its user database (unused, but it opens one)
    proc = lab.spawn(node, [_tool("turnserver"), "-n", "--no-tls", "--no-dtls", "--stun-only",
                            "--no-cli", "--no-auth", "-r", "natlab.test", "-L", ip,
                            "-p", str(port), "--log-file", "stdout", "--simple-log",
                            "--pidfile", "/dev/null", "--userdb", os.path.join(tmp, f"turndb-{ip}-{port}")])
    cp = lab.run(node, [PYTHON, "-c", _STUN_PING, ip, str(port), str(timeout)],
                 timeout=timeout + 5)
    if cp.returncode != 0:
        lab.stop(proc)
        raise LabError(f"coturn did not answer STUN on {hostport(ip, port)} within {timeout}s")
    return proc


def probe(lab: Lab, node: NsLike, bind: str, reqs: Sequence[str], *,
          timeout: float = 0.5) -> list:
    """Run ``udp_probe.py client`` in ``node`` from ``bind``; one result dict per request.

    ``reqs`` items are ``"DEST"``, ``"DEST@FROM"`` (answer requested from FROM) or
    ``"tcp:DEST"``.  ``timeout`` bounds each request that gets no answer.
    """
    argv = [PYTHON, UDP_PROBE, "client", "--bind", bind, "--timeout", str(timeout)]
    for r in reqs:
        argv += ["--req", r]
    cp = lab.run(node, argv, timeout=5 + timeout * len(reqs))
    if cp.returncode != 0:
        raise LabError(f"udp_probe client failed ({cp.returncode}): {cp.stderr.strip()}")
    return json.loads(cp.stdout)["results"]


# --------------------------------------------------------------------------------------------
# Interception and conntrack helpers (for tests that attack or disturb a running call)

def quic_divert_ruleset(*, lan_ip: str, port: int, wan_ip: str, peer_ip: str, peer_port: int,
                        to_ip: str, to_port: int, mark: int = 0x4d) -> str:
    """Body of a table (for ``Lab.add_table`` on the router of ``lan_ip``) that diverts QUIC.

    A man in the middle on the router: UDP from ``lan_ip:port`` to ``peer_ip:peer_port``
    whose first payload byte is >= 64 -- QUIC by RFC 7983's demultiplexing (STUN starts with
    0..3) -- is sent to ``to_ip:to_port`` instead, with the router's ``wan_ip`` as source,
    and the answers from there come back to the host rewritten to look like
    ``peer_ip:peer_port``.  STUN (ICE checks) still goes to the real peer.  Stateless
    (``notrack`` + payload rewrites, raw priority), because STUN and QUIC share one 5-tuple
    and conntrack NAT decides per 5-tuple, at its first packet.  Checked in a lab run: a
    first byte 0x00/0x01 reaches the peer, 0x45/0xc3 reaches ``to_ip`` and its answer
    arrives "from" ``peer_ip:peer_port``.
    """
    out_mark, in_mark = mark, mark + 1
    return (
        "\tchain pre {\n"
        "\t\ttype filter hook prerouting priority raw; policy accept;\n"
        f'\t\tiifname != "wan0" ip saddr {lan_ip} ip daddr {peer_ip} udp sport {port} '
        f"udp dport {peer_port} @th,64,8 >= 64 notrack ip daddr set {to_ip} "
        f"udp dport set {to_port} meta mark set {out_mark}\n"
        f'\t\tiifname "wan0" ip saddr {to_ip} udp sport {to_port} ip daddr {wan_ip} '
        f"udp dport {port} notrack ip daddr set {lan_ip} meta mark set {in_mark}\n"
        "\t}\n"
        "\tchain post {\n"
        "\t\ttype filter hook postrouting priority srcnat; policy accept;\n"
        f"\t\tmeta mark {out_mark} ip saddr set {wan_ip}\n"
        f"\t\tmeta mark {in_mark} ip saddr set {peer_ip} udp sport set {peer_port}\n"
        "\t}\n")


def flush_conntrack_here() -> None:
    """Flush this namespace's IPv4 conntrack table over ctnetlink (stdlib only).

    One ``IPCTNL_MSG_CT_DELETE`` request without attributes deletes every entry of the
    family -- what ``conntrack -F`` sends.  Raises ``OSError`` with the kernel's error.
    """
    import socket
    import struct
    netlink_netfilter = 12
    nlm_f_request, nlm_f_ack = 0x1, 0x4
    msg_type = (1 << 8) | 2                      # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE
    body = struct.pack("=BBH", socket.AF_INET, 0, 0)              # struct nfgenmsg
    hdr = struct.pack("=IHHII", 16 + len(body), msg_type, nlm_f_request | nlm_f_ack, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, netlink_netfilter) as s:
        s.bind((0, 0))
        s.settimeout(5)
        s.send(hdr + body)
        reply = s.recv(4096)
    _len, typ = struct.unpack_from("=IH", reply)
    if typ != 2:                                  # NLMSG_ERROR (an ack is error 0)
        raise OSError(f"unexpected netlink reply type {typ}")
    (err,) = struct.unpack_from("=i", reply, 16)
    if err != 0:
        raise OSError(-err, os.strerror(-err))


_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"          # where 'ip netns add' puts its namespaces


def _in_netns(ns: str, fn, *args):
    """``fn(*args)`` run in a new thread that has joined network namespace ``ns`` (setns(2)).

    Only that thread changes namespace (and ends afterwards); sockets it makes belong to
    ``ns``.  Saves starting a helper process (~0.1 s) where speed matters (``move_host``).
    Returns ``fn``'s result or raises its exception.
    """
    import ctypes
    out = {}

    def target():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(os.path.join(_NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            out["value"] = fn(*args)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=target, name=f"natlab-netns-{ns}", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _nla(attr_type: int, payload: bytes) -> bytes:
    import struct
    n = 4 + len(payload)
    return struct.pack("=HH", n, attr_type) + payload + b"\0" * (-n % 4)


def _nla_parse(buf: bytes) -> dict:
    """Netlink attributes -> {type (flags masked off): payload}."""
    import struct
    out = {}
    off = 0
    while off + 4 <= len(buf):
        ln, typ = struct.unpack_from("=HH", buf, off)
        if ln < 4:
            break
        out[typ & 0x3fff] = buf[off + 4:off + ln]
        off += (ln + 3) & ~3
    return out


def _ct_tuple(payload: bytes) -> tuple:
    """A ctnetlink CTA_TUPLE_* payload -> ``(src, dst, proto, sport, dport)`` (ICMP: the id as
    both ports)."""
    import socket
    import struct
    attrs = _nla_parse(payload)
    ip = _nla_parse(attrs.get(1, b""))                         # CTA_TUPLE_IP
    if 1 in ip:                                                # CTA_IP_V4_SRC / _DST
        src, dst = (socket.inet_ntop(socket.AF_INET, ip[1]),
                    socket.inet_ntop(socket.AF_INET, ip[2]))
    elif 3 in ip:                                              # CTA_IP_V6_SRC / _DST
        src, dst = (socket.inet_ntop(socket.AF_INET6, ip[3]),
                    socket.inet_ntop(socket.AF_INET6, ip[4]))
    else:
        return (None, None, None, None, None)
    pr = _nla_parse(attrs.get(2, b""))                         # CTA_TUPLE_PROTO
    num = pr[1][0] if 1 in pr else None
    sport = dport = None
    if 2 in pr and 3 in pr:                                    # CTA_PROTO_SRC/DST_PORT
        sport, dport = struct.unpack("!H", pr[2])[0], struct.unpack("!H", pr[3])[0]
    elif 4 in pr or 7 in pr:                                   # CTA_PROTO_ICMP(V6)_ID
        sport = dport = struct.unpack("!H", pr.get(4, pr.get(7)))[0]
    return (src, dst, num, sport, dport)


def _ct_forget_here(specs: Sequence[tuple]) -> list:
    """Delete this namespace's conntrack entries (both families) of some endpoints.

    ``specs``: ``(ip, proto, port)``, proto/port None for "any".  An entry goes when its
    original source matches a spec, or (port None) its reply source is that address (an
    inbound flow DNAT'ed to it).  Returns ``(ip, proto, port)`` of the translated source of
    each entry deleted for its original source -- what the next NAT layer out saw as source.
    Over ctnetlink (a dump, then one delete per entry; entries gone meanwhile are skipped).
    """
    import socket
    import struct
    want = [(ipaddress.ip_address(ip), proto, port) for ip, proto, port in specs]
    nlm_f_request, nlm_f_ack, nlm_f_dump = 0x1, 0x4, 0x300
    nlmsg_error, nlmsg_done = 2, 3
    ct_get, ct_delete = (1 << 8) | 1, (1 << 8) | 2          # NFNL_SUBSYS_CTNETLINK << 8 | msg
    victims = []
    translated = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12) as s:   # NETLINK_NETFILTER
        s.bind((0, 0))
        s.settimeout(5)
        s.send(struct.pack("=IHHII", 20, ct_get, nlm_f_request | nlm_f_dump, 1, 0)
               + struct.pack("=BBH", socket.AF_UNSPEC, 0, 0))
        done = False
        while not done:
            data = s.recv(1 << 17)
            off = 0
            while off + 16 <= len(data):
                ln, typ = struct.unpack_from("=IH", data, off)
                if ln < 16:
                    break
                if typ == nlmsg_done:
                    done = True
                    break
                if typ == nlmsg_error:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err:
                        raise OSError(-err, f"conntrack dump: {os.strerror(-err)}")
                else:
                    family = data[off + 16]
                    attrs = _nla_parse(data[off + 20:off + ln])
                    if 1 in attrs and 2 in attrs:                # CTA_TUPLE_ORIG / _REPLY
                        o = _ct_tuple(attrs[1])
                        r = _ct_tuple(attrs[2])
                        if o[0] is not None:
                            o_src = ipaddress.ip_address(o[0])
                            r_src = ipaddress.ip_address(r[0])
                            hit = by_src = False
                            for ip, proto, port in want:
                                if (o_src == ip and proto in (None, o[2])
                                        and port in (None, o[3])):
                                    hit = by_src = True
                                elif port is None and proto is None and r_src == ip:
                                    hit = True
                            if hit:
                                victims.append((family, attrs))
                                if by_src:
                                    translated.append((r[1], o[2], r[4]))
                off += (ln + 3) & ~3
        seq = 2
        for family, attrs in victims:
            body = _nla(1 | 0x8000, attrs[1])                      # CTA_TUPLE_ORIG, nested
            if 18 in attrs:                                        # CTA_ZONE
                body += _nla(18, attrs[18])
            msg = struct.pack("=BBH", family, 0, 0) + body
            s.send(struct.pack("=IHHII", 16 + len(msg), ct_delete, nlm_f_request | nlm_f_ack,
                               seq, 0) + msg)
            reply = s.recv(4096)
            (err,) = struct.unpack_from("=i", reply, 16)
            if err and -err != 2:                                  # ENOENT: already gone
                raise OSError(-err, f"conntrack delete: {os.strerror(-err)}")
            seq += 1
    return translated


if __name__ == "__main__":  # manual maintenance: python3 natlab.py cleanup
    if sys.argv[1:] == ["cleanup"]:
        print("\n".join(cleanup_stale(verbose=True)) or "nothing stale")
    elif sys.argv[1:] == ["conntrack-flush"]:     # run inside a namespace by Lab.flush_conntrack
        flush_conntrack_here()
    else:
        print(__doc__)
