#!/usr/bin/python3
"""Port-mapping clients for the NAT lab: NAT-PMP, PCP and UPnP IGD, Python stdlib only.

Hand-written from the RFCs / the UPnP IGD spec, independent of parley, for the lab's
self-checks of its miniupnpd routers (``Lab.add_site(..., port_mapping=...)``).  Run inside a
LAN host's namespace; each command prints one JSON object on stdout and exits 0 (also when
the gateway did not answer: ``"answered": false``); 2 on bad arguments.

    pm_client.py natpmp --gateway GW --port P [--external-port E] [--lifetime S]
                        [--proto udp|tcp] [--timeout T]
        RFC 6886: an external-address request (opcode 0), then a map request (opcode 1 UDP,
        2 TCP; 12 bytes) for internal port P.  ``--lifetime 0`` deletes the mapping (the
        suggested external port is sent as 0 then, section 3.4).
        -> {"answered", "result", "external_ip", "external_port", "lifetime", "epoch"}

    pm_client.py pcp --gateway GW --client-ip IP --port P [--external-port E]
                     [--lifetime S] [--proto udp|tcp] [--nonce HEX24] [--timeout T]
        RFC 6887: a MAP request (24-byte header + 36-byte MAP opcode = 60 bytes), the client
        and suggested external addresses IPv4-mapped.  The same ``--nonce`` with
        ``--lifetime 0`` deletes the mapping.
        -> {"answered", "result", "external_ip", "external_port", "lifetime", "epoch",
            "nonce"}

    pm_client.py upnp --client-ip IP --port P [--external-port E] [--lease S]
                      [--proto udp|tcp] [--delete] [--timeout T]
        UPnP IGD: SSDP M-SEARCH for urn:schemas-upnp-org:device:InternetGatewayDevice:1 to
        239.255.255.250:1900, the device description from its LOCATION, then SOAP
        GetExternalIPAddress and AddPortMapping (``--delete``: DeletePortMapping) on its
        WANIPConnection service.  Without an SSDP answer: ``"answered": false``.
        -> {"answered", "location", "service", "external_ip", "external_port",
            "soap_status", "soap_error"}

Requests are resent (NAT-PMP/PCP: 250 ms, doubling, RFC 6886 section 3.1; SSDP every 250 ms)
until an answer comes or ``--timeout`` seconds (default 3) pass.
"""

import argparse
import http.client
import ipaddress
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET

NATPMP_PORT = 5351
SSDP = ("239.255.255.250", 1900)
IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
PROTO = {"udp": 17, "tcp": 6}


def exchange(sock, dest, payload, timeout, accept):
    """Send ``payload`` to ``dest`` (resent at 250 ms, doubling) until ``accept(data)`` is
    truthy for a datagram from ``dest``; returns that value, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    interval = 0.25
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None
        sock.sendto(payload, dest)
        resend = min(deadline, now + interval)
        interval *= 2
        while True:
            left = resend - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, src = sock.recvfrom(2048)
            except socket.timeout:
                break
            except OSError:          # e.g. ECONNREFUSED reported late: keep waiting
                continue
            if src[0] == dest[0] and src[1] == dest[1]:
                got = accept(data)
                if got:
                    return got


def cmd_natpmp(a):
    gw = (a.gateway, NATPMP_PORT)
    out = {"answered": False}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        deadline = time.monotonic() + a.timeout
        # External address (opcode 0): version 0, opcode 0.
        r = exchange(s, gw, bytes([0, 0]), a.timeout,
                     lambda d: d if len(d) >= 12 and d[0] == 0 and d[1] == 128 else None)
        if r is None:
            print(json.dumps(out))
            return 0
        result, epoch = struct.unpack_from("!HI", r, 2)
        out.update(answered=True, result=result, epoch=epoch,
                   external_ip=socket.inet_ntoa(r[8:12]))
        if result != 0:
            print(json.dumps(out))
            return 0
        op = 1 if a.proto == "udp" else 2
        ext = 0 if a.lifetime == 0 else a.external_port
        req = struct.pack("!BBHHHI", 0, op, 0, a.port, ext, a.lifetime)
        left = max(0.0, deadline - time.monotonic())
        r = exchange(s, gw, req, left,
                     lambda d: d if len(d) >= 16 and d[0] == 0 and d[1] == 128 + op
                     and struct.unpack_from("!H", d, 8)[0] == a.port else None)
        if r is None:
            out["answered"] = False
            print(json.dumps(out))
            return 0
        _v, _op, result, epoch, iport, eport, life = struct.unpack_from("!BBHIHHI", r)
        out.update(result=result, epoch=epoch, internal_port=iport, external_port=eport,
                   lifetime=life)
    print(json.dumps(out))
    return 0


def mapped(ip):
    return ipaddress.IPv6Address("::ffff:" + ip).packed


def cmd_pcp(a):
    gw = (a.gateway, NATPMP_PORT)
    nonce = bytes.fromhex(a.nonce) if a.nonce else os.urandom(12)
    if len(nonce) != 12:
        print("--nonce: 12 bytes (24 hex digits)", file=sys.stderr)
        return 2
    # Header: version 2, R=0 | opcode 1 (MAP), reserved, lifetime, client IP (16).
    hdr = struct.pack("!BBHI", 2, 1, 0, a.lifetime) + mapped(a.client_ip)
    # MAP: nonce, protocol, 3 reserved, internal port, suggested external port and address.
    body = (nonce + struct.pack("!B3xHH", PROTO[a.proto], a.port, a.external_port)
            + mapped("0.0.0.0"))
    req = hdr + body
    assert len(req) == 60

    def accept(d):
        if len(d) >= 60 and d[0] == 2 and d[1] == 0x81 and d[24:36] == nonce:
            return d
        return None

    out = {"answered": False, "nonce": nonce.hex()}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        r = exchange(s, gw, req, a.timeout, accept)
    if r is not None:
        result = r[3]
        life, epoch = struct.unpack_from("!II", r, 4)
        proto, iport, eport = struct.unpack_from("!B3xHH", r, 36)
        ext = ipaddress.IPv6Address(r[44:60])
        out.update(answered=True, result=result, lifetime=life, epoch=epoch, proto=proto,
                   internal_port=iport, external_port=eport,
                   external_ip=str(ext.ipv4_mapped or ext))
    print(json.dumps(out))
    return 0


def ssdp_search(timeout):
    """The LOCATION of the first IGD that answers an M-SEARCH, or None."""
    msg = ("M-SEARCH * HTTP/1.1\r\n"
           f"HOST: {SSDP[0]}:{SSDP[1]}\r\n"
           'MAN: "ssdp:discover"\r\n'
           "MX: 1\r\n"
           f"ST: {IGD}\r\n\r\n").encode()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        s.bind(("0.0.0.0", 0))
        while time.monotonic() < deadline:
            s.sendto(msg, SSDP)
            resend = min(deadline, time.monotonic() + 0.25)
            while True:
                left = resend - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    data, _src = s.recvfrom(4096)
                except socket.timeout:
                    break
                except OSError:
                    continue
                text = data.decode("utf-8", "replace")
                if not text.startswith("HTTP/1.1 200"):
                    continue
                headers = {}
                for line in text.split("\r\n")[1:]:
                    k, sep, v = line.partition(":")
                    if sep:
                        headers[k.strip().lower()] = v.strip()
                if IGD in headers.get("st", "") and "location" in headers:
                    return headers["location"]
    return None


def http_request(url, method="GET", body=None, headers=None, timeout=3.0):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        path = u.path + ("?" + u.query if u.query else "")
        conn.request(method, path or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def find_service(desc_xml):
    """(serviceType, controlURL) of the first WANIPConnection service in a description."""
    root = ET.fromstring(desc_xml)
    for svc in root.iter():
        if not svc.tag.endswith("}service") and svc.tag != "service":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in svc}
        if ":WANIPConnection:" in fields.get("serviceType", ""):
            return fields["serviceType"], fields.get("controlURL", "")
    return None, None


def soap(control_url, service, action, args, timeout):
    body = ('<?xml version="1.0"?>\r\n'
            '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
            f'<u:{action} xmlns:u="{service}">'
            + "".join(f"<{k}>{v}</{k}>" for k, v in args)
            + f"</u:{action}></s:Body></s:Envelope>\r\n")
    status, text = http_request(control_url, "POST", body.encode(), {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPAction": f'"{service}#{action}"'}, timeout)
    values = dict(re.findall(r"<(New\w+)>([^<]*)</\1>", text))
    err = re.search(r"<errorCode>(\d+)</errorCode>", text)
    return status, values, int(err.group(1)) if err else None


def cmd_upnp(a):
    deadline = time.monotonic() + a.timeout
    out = {"answered": False}
    location = ssdp_search(a.timeout)
    if location is None:
        print(json.dumps(out))
        return 0
    out.update(answered=True, location=location)

    def left():
        return max(0.5, deadline - time.monotonic())

    status, desc = http_request(location, timeout=left())
    service, control = find_service(desc)
    if service is None:
        out["error"] = f"no WANIPConnection service in {location} (HTTP {status})"
        print(json.dumps(out))
        return 0
    control_url = urllib.parse.urljoin(location, control)
    out["service"] = service
    st, vals, err = soap(control_url, service, "GetExternalIPAddress", [], left())
    out["external_ip"] = vals.get("NewExternalIPAddress")
    ext = a.external_port or a.port
    if a.delete:
        st, vals, err = soap(control_url, service, "DeletePortMapping", [
            ("NewRemoteHost", ""), ("NewExternalPort", ext),
            ("NewProtocol", a.proto.upper())], left())
    else:
        st, vals, err = soap(control_url, service, "AddPortMapping", [
            ("NewRemoteHost", ""), ("NewExternalPort", ext),
            ("NewProtocol", a.proto.upper()), ("NewInternalPort", a.port),
            ("NewInternalClient", a.client_ip), ("NewEnabled", 1),
            ("NewPortMappingDescription", "natlab pm_client"),
            ("NewLeaseDuration", a.lease)], left())
    out.update(soap_status=st, soap_error=err, external_port=ext if st == 200 else None)
    print(json.dumps(out))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("natpmp")
    n.add_argument("--gateway", required=True)
    c = sub.add_parser("pcp")
    c.add_argument("--gateway", required=True)
    c.add_argument("--client-ip", required=True)
    c.add_argument("--nonce")
    u = sub.add_parser("upnp")
    u.add_argument("--client-ip", required=True)
    u.add_argument("--lease", type=int, default=3600)
    u.add_argument("--delete", action="store_true")
    for sp in (n, c, u):
        sp.add_argument("--port", type=int, required=True, help="internal port")
        sp.add_argument("--external-port", type=int, default=None)
        sp.add_argument("--proto", choices=sorted(PROTO), default="udp")
        sp.add_argument("--timeout", type=float, default=3.0)
    for sp in (n, c):
        sp.add_argument("--lifetime", type=int, default=3600)
    a = p.parse_args(argv)
    if a.external_port is None:
        a.external_port = a.port if a.cmd != "upnp" else 0
    return {"natpmp": cmd_natpmp, "pcp": cmd_pcp, "upnp": cmd_upnp}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
