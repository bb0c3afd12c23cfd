"""A one-way delay line for a host's IPv4 packets toward one address: the lab's stand-in for a
long path between two peers, since ``tc netem`` (and every other delaying qdisc) is not
available here.  Unlike delay_forwarder.py it changes no address: the packets are the host's
own, so NATs, ICE and QUIC see exactly what they would see on a slow path.

    python3 delay_line.py --dev dly0 --mark 0x70 --delay-ms D

Run inside the host's namespace after Lab.delay_toward() created the TUN device ``--dev`` and
the policy routing that sends the host's packets toward the delayed address into it.  Every
packet read from the device is held ``D`` ms, then sent out again through a raw socket whose
packets carry firewall mark ``--mark``, which a higher-priority rule routes by the main table
(out of eth0, as if never delayed).  Prints ``delaying`` once ready.  Standard library only.
"""

import argparse
import asyncio
import fcntl
import os
import socket
import struct
import sys

TUNSETIFF = 0x400454ca
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SO_MARK = 36


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", required=True)
    ap.add_argument("--mark", type=lambda s: int(s, 0), required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    args = ap.parse_args()

    tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", args.dev.encode(), IFF_TUN | IFF_NO_PI))
    out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    out.setsockopt(socket.SOL_SOCKET, SO_MARK, args.mark)
    delay = args.delay_ms / 1000.0

    loop = asyncio.new_event_loop()

    def send(packet):
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return  # IPv4 only
        try:
            out.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
        except OSError:
            pass  # a full socket buffer drops it, as a link would

    def readable():
        while True:
            try:
                packet = os.read(tun, 65535)
            except BlockingIOError:
                return
            loop.call_later(delay, send, packet)

    loop.add_reader(tun, readable)
    print("delaying", flush=True)
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
