"""A UDP forwarder that adds delay (and optional jitter): the lab's stand-in for a long path,
since ``tc netem`` is not available here.

    python3 delay_forwarder.py --listen IP:PORT --to IP:PORT --delay-ms D [--jitter-ms J]

Every client address that sends to ``--listen`` gets its own upstream socket (bound to the
listen IP, any port) toward ``--to``; packets in both directions are held ``D`` ms (plus a
uniform 0..J ms) before they go on. Prints ``forwarding LISTEN -> TO`` once ready. Standard
library only; runs inside a lab namespace.
"""

import argparse
import asyncio
import random
import sys


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Upstream(asyncio.DatagramProtocol):
    def __init__(self, fwd, client):
        self.fwd, self.client, self.transport = fwd, client, None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, _):
        self.fwd.later(lambda: self.fwd.transport.sendto(data, self.client))


class Forwarder(asyncio.DatagramProtocol):
    def __init__(self, args):
        self.args, self.transport, self.upstreams = args, None, {}
        self.loop = asyncio.get_running_loop()
        self.rng = random.Random(1)

    def later(self, fn):
        d = self.args.delay_ms + self.rng.uniform(0, self.args.jitter_ms)
        self.loop.call_later(d / 1000.0, fn)

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, client):
        up = self.upstreams.get(client)
        if up is None:
            up = Upstream(self, client)
            self.upstreams[client] = up
            self.loop.create_task(self.open(up))
        self.later(lambda: up.transport.sendto(data) if up.transport else None)

    async def open(self, up):
        await self.loop.create_datagram_endpoint(
            lambda: up, local_addr=(self.args.listen[0], 0), remote_addr=self.args.to)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", type=addr, required=True)
    p.add_argument("--to", type=addr, required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    args = p.parse_args()
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Forwarder(args), local_addr=args.listen)
    print(f"forwarding {args.listen[0]}:{args.listen[1]} -> {args.to[0]}:{args.to[1]}",
          flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
