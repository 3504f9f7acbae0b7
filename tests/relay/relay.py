#!/usr/bin/env python3
"""A TCP relay that puts a round-trip time on the wire, for benchmarks and tests.

    python3 tests/relay/relay.py --listen 0 --target 127.0.0.1:8443 --rtt-ms 50
    PORT 41877

Every chunk read from either side is written to the other RTT/2 later, in order. A new
connection passes no byte before one RTT has gone by since it was accepted: what the
TCP handshake costs a real client before its first request can leave. So a request sent
at once on a new connection is answered after two RTT, and each later request on it
after one; TLS handshakes, keep-alive and multiplexing cost what they cost on a real
network. Bandwidth is not limited. (The kernel here has no netem qdisc to do this.)

It prints exactly one line, `PORT <n>` (127.0.0.1), then relays until SIGTERM or SIGINT
(exit 0). `--log FILE` appends a line per accepted connection (the client's port), so a
benchmark can count the connections a client opened. Python 3 standard library only;
test and bench tooling, like the emulator."""
import argparse
import asyncio
import collections
import selectors
import signal
import socket
import sys

CHUNK = 65536


class Pipe:
    """One direction of one connection: chunks and then EOF, each due at its own time,
    written in the order they were read."""

    def __init__(self, reader, writer, delay, not_before):
        self.reader, self.writer = reader, writer
        self.delay, self.not_before = delay, not_before
        self.queue = collections.deque()
        self.ready = asyncio.Event()

    async def read(self):
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await self.reader.read(CHUNK)
            except OSError:
                data = b""
            due = max(loop.time(), self.not_before) + self.delay
            self.queue.append((due, data))
            self.ready.set()
            if not data:
                return

    async def write(self):
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            due, data = self.queue.popleft()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not data:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            self.writer.write(data)
            await self.writer.drain()

    async def run(self):
        reading = asyncio.ensure_future(self.read())
        try:
            await self.write()
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


def nodelay(writer):
    """Chunks are timed by the relay, not by Nagle's algorithm waiting for an ACK."""
    sock = writer.get_extra_info("socket")
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass  # a peer that reset already: the pipes will see it


class Relay:
    def __init__(self, host, port, rtt, log=None):
        self.host, self.port, self.rtt, self.log = host, port, rtt, log
        self.connections = set()

    async def serve(self, creader, cwriter):
        accepted = asyncio.get_running_loop().time()
        if self.log:
            self.log.write(f"{cwriter.get_extra_info('peername')[1]}\n")
            self.log.flush()
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            await self.relay(creader, cwriter, accepted)
        finally:
            self.connections.discard(task)

    async def stop(self):
        """Every connection still open ends now, before the loop does."""
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)

    async def relay(self, creader, cwriter, accepted):
        nodelay(cwriter)
        try:
            sreader, swriter = await asyncio.open_connection(self.host, self.port)
        except OSError:
            cwriter.close()
            return
        nodelay(swriter)
        half = self.rtt / 2
        up = Pipe(creader, swriter, half, accepted + self.rtt)
        down = Pipe(sreader, cwriter, half, accepted + self.rtt)
        tasks = [asyncio.ensure_future(up.run()), asyncio.ensure_future(down.run())]
        try:
            # A side that fails (reset, broken pipe) ends both directions.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            # Retrieved, not raised: a reset is how connections end here.
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (cwriter, swriter):
                w.close()


async def main_async(args):
    host, _, port = args.target.rpartition(":")
    log = open(args.log, "a", buffering=1) if args.log else None
    relay = Relay(host.strip("[]") or "127.0.0.1", int(port), args.rtt_ms / 1000, log)
    server = await asyncio.start_server(relay.serve, "127.0.0.1", args.listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()
        server.close()
        await relay.stop()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", type=int, default=0, help="port (0: a free one), 127.0.0.1")
    p.add_argument("--target", required=True, help="HOST:PORT to relay to")
    p.add_argument("--rtt-ms", type=float, default=50, help="round-trip time (default 50)")
    p.add_argument("--log", metavar="FILE",
                   help="append a line per accepted connection (the client's port)")
    args = p.parse_args(argv)
    # select() sleeps to the microsecond; epoll, asyncio's default, to the millisecond
    # rounded up, which woke each chunk about half a millisecond late in each direction.
    # A relay has a few dozen sockets at most, far below select()'s limit.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(main_async(args))
    except OSError as e:
        sys.stderr.write(f"relay: {e}\n")
        return 2
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
