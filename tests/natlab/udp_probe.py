#!/usr/bin/python3
"""UDP probe for the NAT lab: a "what is my address" echo server and its client.

Server (runs until SIGTERM/SIGINT)::

    udp_probe.py server --bind IP:PORT [--bind IP:PORT ...] [--tcp IP:PORT ...]

binds every address, prints ``ready`` once all are bound, then answers each datagram with
the sender's address as the receiving socket observed it.  A request
``natlab-probe <nonce> [from=IP:PORT]`` is answered ``natlab-observed <nonce> <ip:port>``,
sent from the socket bound to ``from`` when given (like an RFC 5780 CHANGE-REQUEST: the
answer comes from another address and/or port than the one asked) -- this is how the lab
checks filtering.  Any other datagram is answered ``natlab-observed - <ip:port>``.  Every
datagram is logged as ``recv <local> <- <peer> <payload>``.  ``--tcp`` also listens on TCP
and answers each connection with ``natlab-observed - <ip:port>`` (a non-UDP control path,
e.g. to show that a ``udp-blocked`` router still forwards TCP).

Client::

    udp_probe.py client --bind IP:PORT --req DEST[@FROM] [--req ...] [--timeout S]

(``--req tcp:DEST`` asks a ``--tcp`` listener over TCP instead, from an ephemeral port)

sends the requests one after the other from one socket bound to ``--bind`` (a fixed local
port, so all requests share one NAT mapping when the NAT is endpoint-independent), resending
every 100 ms until the answer arrives or ``--timeout`` seconds pass, and prints one JSON
object::

    {"local": "ip:port",
     "results": [{"to": DEST, "from": FROM|null, "observed": "ip:port"|null,
                  "reply_src": "ip:port"|null}, ...]}

``observed`` is null when no answer came.  Exit status 0 unless the arguments are wrong or
the bind fails.

IPv6 endpoints are written ``[ADDR]:PORT`` everywhere (arguments, ``from=``, output; the
address in its canonical RFC 5952 form); a socket's family follows its bind address (IPv6
sockets are IPV6_V6ONLY).  A request to the other family than ``--bind`` gets no answer.
"""

import argparse
import ipaddress
import json
import os
import select
import signal
import socket
import sys
import time


def parse_addr(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected IP:PORT or [IPv6]:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e
    return (host, int(port))


def fmt(addr):
    if ":" in addr[0]:
        return f"[{addr[0]}]:{addr[1]}"
    return f"{addr[0]}:{addr[1]}"


def family(addr):
    return socket.AF_INET6 if ":" in addr[0] else socket.AF_INET


def new_socket(addr, kind):
    s = socket.socket(family(addr), kind)
    if family(addr) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def udp_socket(bind):
    s = new_socket(bind, socket.SOCK_DGRAM)
    s.bind(bind)
    return s


def serve(binds, tcp_binds=()):
    socks = {}
    for b in binds:
        s = udp_socket(b)
        socks[fmt(s.getsockname())] = s
    listeners = []
    for b in tcp_binds:
        t = new_socket(b, socket.SOCK_STREAM)
        t.bind(b)
        t.listen(16)
        listeners.append(t)

    def _exit(*_):
        sys.exit(0)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    print("ready", flush=True)
    while True:
        try:
            ready, _, _ = select.select(list(socks.values()) + listeners, [], [])
        except InterruptedError:
            continue
        for s in ready:
            if s in listeners:
                try:
                    conn, peer = s.accept()
                    with conn:
                        print(f"accept {fmt(s.getsockname())} <- {fmt(peer)}", flush=True)
                        conn.sendall(f"natlab-observed - {fmt(peer)}\n".encode())
                except OSError:
                    pass
                continue
            try:
                data, peer = s.recvfrom(2048)
            except OSError:
                continue
            text = data.decode("utf-8", "replace").strip()
            print(f"recv {fmt(s.getsockname())} <- {fmt(peer)} {text}", flush=True)
            parts = text.split()
            nonce, out = "-", s
            if len(parts) >= 2 and parts[0] == "natlab-probe":
                nonce = parts[1]
                for p in parts[2:]:
                    if p.startswith("from="):
                        out = socks.get(p[5:])
                        if out is None:
                            print(f"error: not bound to {p[5:]}", flush=True)
            if out is not None:
                try:
                    out.sendto(f"natlab-observed {nonce} {fmt(peer)}".encode(), peer)
                except OSError as e:
                    print(f"error: sendto {fmt(peer)}: {e}", flush=True)


def client(bind, reqs, timeout):
    s = udp_socket(bind)
    results = []
    for i, (dest, src) in enumerate(reqs):
        if src == "tcp":
            results.append(tcp_request(dest, timeout))
            continue
        nonce = f"{os.getpid()}-{i}"
        msg = f"natlab-probe {nonce}" + (f" from={fmt(src)}" if src else "")
        deadline = time.monotonic() + timeout
        observed = reply_src = None
        next_send = 0.0
        while observed is None:
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_send:
                try:
                    s.sendto(msg.encode(), dest)
                except OSError:
                    pass  # e.g. ENETUNREACH: counts as no answer
                next_send = now + 0.1
            ready, _, _ = select.select([s], [], [], max(0.0, min(next_send, deadline) - now))
            if not ready:
                continue
            try:
                data, peer = s.recvfrom(2048)
            except OSError:
                continue
            parts = data.decode("utf-8", "replace").split()
            if len(parts) == 3 and parts[0] == "natlab-observed" and parts[1] == nonce:
                observed, reply_src = parts[2], fmt(peer)
        results.append({"to": fmt(dest), "from": fmt(src) if src else None,
                        "observed": observed, "reply_src": reply_src})
    print(json.dumps({"local": fmt(s.getsockname()), "results": results}), flush=True)
    return 0


def tcp_request(dest, timeout):
    observed = reply_src = None
    try:
        with socket.create_connection(dest, timeout=timeout) as c:
            deadline = time.monotonic() + timeout
            buf = b""
            while b"\n" not in buf and time.monotonic() < deadline:
                c.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = c.recv(256)
                if not chunk:
                    break
                buf += chunk
            parts = buf.decode("utf-8", "replace").split()
            if len(parts) == 3 and parts[0] == "natlab-observed":
                observed, reply_src = parts[2], fmt(dest)
    except OSError:
        pass
    return {"to": "tcp:" + fmt(dest), "from": None, "observed": observed,
            "reply_src": reply_src}


def parse_req(text):
    if text.startswith("tcp:"):
        return (parse_addr(text[4:]), "tcp")
    dest, sep, src = text.partition("@")
    return (parse_addr(dest), parse_addr(src) if sep else None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    sp = sub.add_parser("server")
    sp.add_argument("--bind", type=parse_addr, action="append", required=True)
    sp.add_argument("--tcp", type=parse_addr, action="append", default=[])
    cp = sub.add_parser("client")
    cp.add_argument("--bind", type=parse_addr, required=True)
    cp.add_argument("--req", type=parse_req, action="append", required=True,
                    help="DEST[@FROM]: ask DEST, request the answer from FROM; "
                    "tcp:DEST: ask a --tcp listener")
    cp.add_argument("--timeout", type=float, default=1.0, help="seconds per request")
    a = ap.parse_args(argv)
    if a.mode == "server":
        return serve(a.bind, a.tcp)
    return client(a.bind, a.req, a.timeout)


if __name__ == "__main__":
    sys.exit(main())
