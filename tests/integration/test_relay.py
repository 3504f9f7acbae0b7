"""tests/relay/relay.py, the delaying TCP relay `make bench` puts in front of the emulator:
a known round-trip time measured through it, bytes kept in order, EOF passed on.

The time bounds check the tool's own correctness (it must delay by at least what it is
told, and not wildly more); they are wide, [0.9, 2] × the expected time, because the
machine is shared. No speed of codesrcfs is asserted here."""
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import read_line

HERE = os.path.dirname(os.path.abspath(__file__))
RELAY = os.path.join(os.path.dirname(HERE), "relay", "relay.py")
RTT = 0.1


class Echo:
    """A loopback server writing back what it reads, closing after the client's EOF."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    @staticmethod
    def echo(conn):
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)


def start_relay(target, rtt, *extra):
    proc = subprocess.Popen([sys.executable, RELAY, "--listen", "0", "--target",
                             f"127.0.0.1:{target}", "--rtt-ms", str(rtt * 1000), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    line = read_line(proc.stdout, 10)
    assert line.startswith("PORT "), line
    return proc, int(line.split()[1])


def stop_relay(proc):
    """SIGTERM: it must exit 0 and leave nothing on stderr."""
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and not err, err


@pytest.fixture
def relay():
    """relay(target_port, rtt) → the relay's port; every relay is stopped after the test."""
    procs = []

    def start(target, rtt, *extra):
        proc, port = start_relay(target, rtt, *extra)
        procs.append(proc)
        return port

    yield start
    for proc in procs:
        stop_relay(proc)


@pytest.mark.timeout_s(30)
def test_resets_half_closes_and_a_stop_with_bytes_in_flight_are_clean():
    """Clients that reset right after sending (a daemon killed), clients that half-close,
    clients still open with bytes in flight when SIGTERM comes: the relay exits 0 and
    writes nothing on stderr."""
    proc, port = start_relay(Echo().port, 0.02)
    kept = []
    try:
        for i in range(40):
            sock = connect(port)
            sock.sendall(b"x" * 100000)
            if i % 2:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            else:
                kept.append(sock)
        time.sleep(0.1)
        for sock in kept[::2]:
            sock.shutdown(socket.SHUT_WR)
        time.sleep(0.05)
        stop_relay(proc)
    finally:
        for sock in kept:
            sock.close()
        if proc.poll() is None:
            proc.kill()


def exchange(sock, data):
    """Seconds from sending data to having all of it back."""
    t = time.monotonic()
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        assert chunk, "the relay closed early"
        got += chunk
    assert got == data
    return time.monotonic() - t


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def within(secs, expected):
    return 0.9 * expected <= secs <= 2 * expected


@pytest.mark.timeout_s(30)
def test_a_request_on_a_kept_connection_costs_one_rtt(relay):
    port = relay(Echo().port, RTT)
    with connect(port) as sock:
        exchange(sock, b"warm-up\n")
        times = sorted(exchange(sock, b"ping %d\n" % i) for i in range(5))
    assert within(times[2], RTT), times


@pytest.mark.timeout_s(30)
def test_a_new_connection_costs_one_rtt_before_its_first_exchange(relay):
    port = relay(Echo().port, RTT)
    times = []
    for _ in range(3):
        t = time.monotonic()
        with connect(port) as sock:
            exchange(sock, b"hello\n")
            times.append(time.monotonic() - t)
    assert within(sorted(times)[1], 2 * RTT), times


@pytest.mark.timeout_s(30)
def test_each_direction_is_delayed_by_half_the_rtt(relay):
    """Two chunks sent 0.2 RTT apart on a warm connection each come back one RTT after
    they were sent: a chunk is held its own RTT/2 each way, not queued behind the delay
    of the one before it."""
    port = relay(Echo().port, RTT)
    with connect(port) as sock:
        exchange(sock, b"warm-up\n")
        t = time.monotonic()
        sock.sendall(b"a")
        time.sleep(0.2 * RTT)
        sock.sendall(b"b")
        arrivals = []
        while len(arrivals) < 2:
            data = sock.recv(1)
            assert data
            arrivals.append((data, time.monotonic() - t))
    assert [a[0] for a in arrivals] == [b"a", b"b"]
    assert within(arrivals[0][1], RTT), arrivals
    assert within(arrivals[1][1], 1.2 * RTT), arrivals
    assert arrivals[1][1] - arrivals[0][1] >= 0.1 * RTT, arrivals


@pytest.mark.timeout_s(30)
def test_bytes_keep_their_order_and_eof_passes_both_ways(relay):
    port = relay(Echo().port, 0.02)
    sent = b"".join(b"%06d," % i for i in range(200000))
    with connect(port) as sock:
        reader_got = []

        def read_all():
            buf = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:  # the echo server closed after our EOF went through
                    break
                buf += chunk
            reader_got.append(buf)

        reader = threading.Thread(target=read_all)
        reader.start()
        for i in range(0, len(sent), 7001):  # odd sizes, many chunks
            sock.sendall(sent[i:i + 7001])
        sock.shutdown(socket.SHUT_WR)
        reader.join(timeout=20)
    assert reader_got and reader_got[0] == sent


@pytest.mark.timeout_s(30)
def test_a_target_that_refuses_closes_the_client(relay):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = relay(dead.getsockname()[1], RTT)
    dead.close()  # nothing listens there now
    with connect(port) as sock:
        sock.sendall(b"anyone?\n")
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass


@pytest.mark.timeout_s(30)
def test_the_log_has_a_line_per_connection_with_the_clients_port(relay, tmp_path):
    log = tmp_path / "connections"
    port = relay(Echo().port, 0.01, "--log", str(log))
    ports = []
    for _ in range(3):
        with connect(port) as sock:
            exchange(sock, b"x")
            exchange(sock, b"y")  # a kept connection is one line
            ports.append(str(sock.getsockname()[1]))
    assert log.read_text().split() == ports
