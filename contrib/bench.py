#!/usr/bin/env python3
"""make bench: codesrcfs against the emulator, row by row, written to docs/benchmarks.md.
Not part of make check.

Three parts. (1) The emulator with a latency per request: cold rows beside their ideal,
warm rows beside the same tree copied to tmpfs and beside libfuse's own passthrough_ll
over that copy (the FUSE floor, built here from libfuse3-dev's examples), and the peers
httpdirfs and rclone. (2) Real round trips: the emulator without latency behind
tests/relay/relay.py, which holds every chunk RTT/2 each way and a new connection one RTT,
so that handshakes, keep-alive and multiplexing cost what they cost on a network: plain
HTTP/1.1, and HTTP/1.1 and h2 over TLS 1.3 through nghttpx; each row beside its ideal
counted in round trips. (3) The targets, met or not. docs/benchmarks.md says how."""
import argparse
import datetime
import gzip
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(ROOT, "tests", "emulator", "emulator.py")
RELAY = os.path.join(ROOT, "tests", "relay", "relay.py")
BENCH_BUILD = os.path.join(ROOT, "build", "bench")
sys.path.insert(0, os.path.join(ROOT, "tests"))
from ports import free_port, wait_port  # noqa: E402  tests/ports.py, shared with the tests
# The generated part of docs/benchmarks.md lies between these; what follows is kept.
BEGIN = "<!-- make bench writes from here -->"
END = "<!-- make bench writes up to here; what follows is kept -->"

# Rows on a mount whose directory is listed (no API request expected), in this order, on
# codesrcfs, the tmpfs copy and passthrough_ll alike. The first cat, find and grep are
# the kernel's first visits of each code source directory and file.
WARM = (("warm ls -l", "ls -l {d}"),
        ("first cat */url", "cat {d}/*/url"),
        ("cat */url (again)", "cat {d}/*/url"),
        ("first find | wc -l", "find {d} | wc -l"),
        ("first grep -r", "grep -r -q zzz-no-match {d}"),
        ("find | wc -l (again)", "find {d} | wc -l"),
        ("grep -r (again)", "grep -r -q zzz-no-match {d}"))
FIRST_VISITS = ("first cat */url", "first find | wc -l", "first grep -r")

INDEX_COLD_JQ = "index: cold jq -r .url .index.jsonl"
INDEX_COLD_CAT = "index: cold cat */url"
INDEX_WARM_JQ = "index: warm jq -r .url .index.jsonl"
INDEX_WARM_CAT = "index: warm cat */url"
FIRST_NEVER = "first entry of a never-listed directory"
MOUNT = "mount (credential check)"
FIRST = "first entry right after mounting"
LOOKUP = "cold look-up of one name"
COLD_LS = "cold ls"


def emu_call(url, path, body=None):
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def timed(cmd, cwd=None):
    t = time.monotonic()
    subprocess.run(cmd, shell=True, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.monotonic() - t


def self_timed(code, timeout=None):
    """Seconds a Python snippet says it took (it prints them): the interpreter's own
    start-up, tens of milliseconds, is no part of the file system's time."""
    out = subprocess.run([sys.executable, "-c", "import os, time\nt = time.monotonic()\n" +
                          code + "\nprint(time.monotonic() - t)"], capture_output=True,
                         text=True, check=True, timeout=timeout).stdout
    return float(out.split()[-1])


def host_steal():
    """Ticks of CPU time the host has taken from this machine so far (steal, /proc/stat)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def start_tool(argv):
    """A tool that prints `PORT <n>` once it serves (the emulator, the relay): (proc, n)."""
    proc = subprocess.Popen([sys.executable] + argv, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"{os.path.basename(argv[0])} did not start: {line!r}")
    return proc, int(line.split()[1])


def stop_tool(proc):
    proc.terminate()
    proc.wait(timeout=30)
    proc.stdout.close()


def wait_mounted(mnt, proc=None, tries=400):
    for _ in range(tries):
        if os.path.ismount(mnt):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def unmount(mnt, proc=None):
    """Unmount; a row that was stopped may leave a reader inside: then lazily."""
    if subprocess.run(["fusermount3", "-u", mnt], check=False,
                      stderr=subprocess.DEVNULL).returncode != 0:
        if proc is not None:
            proc.kill()
        subprocess.run(["fusermount3", "-uz", mnt], check=False)
    if proc is not None:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def count_lines(cmd):
    """Lines a command prints (errors ignored): paths that `find` could reach."""
    out = subprocess.run(cmd, shell=True, capture_output=True, check=False).stdout
    return out.count(b"\n")


def raise_nofile(want):
    """passthrough_ll holds a descriptor for every inode the kernel knows: give it room
    (as root up to the system's bound, else up to the hard limit)."""
    with open("/proc/sys/fs/nr_open") as f:
        bound = int(f.read())
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(want, soft), bound)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def passthrough_ll_sources():
    """libfuse's example passthrough_ll.c and the header it includes, as libfuse3-dev
    ships them (maybe gzipped): {name: path}, or {} when this system left the package's
    examples out."""
    listed = subprocess.run(["dpkg", "-L", "libfuse3-dev"], capture_output=True, text=True,
                            check=False).stdout.split()
    found = {}
    for name in ("passthrough_ll.c", "passthrough_helpers.h"):
        for path in listed:
            if path.endswith(("/" + name, "/" + name + ".gz")) and os.path.exists(path):
                found[name] = path
    return found if len(found) == 2 else {}


def build_passthrough_ll():
    """build/bench/passthrough_ll, compiled now from libfuse3-dev's examples: (path, None)
    or (None, why not)."""
    srcs = passthrough_ll_sources()
    if not srcs:
        return None, "libfuse3-dev's examples (passthrough_ll.c) are not installed"
    os.makedirs(BENCH_BUILD, exist_ok=True)
    for name, src in srcs.items():
        opener = gzip.open if src.endswith(".gz") else open
        with opener(src, "rb") as fin, open(os.path.join(BENCH_BUILD, name), "wb") as fout:
            shutil.copyfileobj(fin, fout)
    out = os.path.join(BENCH_BUILD, "passthrough_ll")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                           text=True, check=True).stdout.split()
    r = subprocess.run(["cc", "-O2", "-o", out, os.path.join(BENCH_BUILD, "passthrough_ll.c")]
                       + flags, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return None, "passthrough_ll did not build: " + r.stderr.strip()[-300:]
    return out, None


def make_ca(d):
    """A throwaway CA made with the openssl command, and a certificate for 127.0.0.1 it
    signed: (cafile, cert, key). Never kept."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=d)

    os.makedirs(d, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    with open(os.path.join(d, "srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "srv.ext")
    return tuple(os.path.join(d, n) for n in ("ca.pem", "srv.pem", "srv.key"))


class Transport:
    """What the relay forwards to and what its handshake costs. The relay relays TCP, so
    TLS and h2 pass through it unchanged. TLS is Debian's nghttpx in front of the plain
    emulator, offering only `alpn` (http/1.1 or h2), TLS 1.3."""

    def __init__(self, label, backend_port, tls=None, alpn=None, work=None):
        self.label, self.tls, self.alpn = label, tls, alpn
        self.h2 = alpn == "h2"
        self.backend_port, self.work, self.proc = backend_port, work, None
        self.port = backend_port

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    def start(self):
        if not self.tls:
            return
        _, cert, key = self.tls
        self.port = free_port()
        name = self.alpn.replace("/", "")  # http/1.1 is no file name
        self.access_log = os.path.join(self.work, f"nghttpx-{name}.log")
        self.proc = subprocess.Popen(
            ["nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{self.port}",
             f"--backend=127.0.0.1,{self.backend_port}", "--workers=1", "--no-ocsp",
             f"--npn-list={self.alpn}", "--tls-min-proto-version=TLSv1.3",
             f"--accesslog-file={self.access_log}", "--accesslog-format=$alpn",
             f"--errorlog-file={os.path.join(self.work, 'nghttpx-error.log')}", key, cert],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "nghttpx")

    def stop(self):
        """None, or what is wrong: a protocol other than the one offered was served."""
        if not self.proc:
            return None
        self.proc.terminate()
        self.proc.wait(timeout=30)
        with open(self.access_log) as f:
            served = set(f.read().split())
        if served != {self.alpn}:
            return f"nghttpx served {', '.join(sorted(served)) or 'nothing'}"
        return None


def ideal_round_trips(op, pages, parallel, tls, h2):
    """Round trips an ideal client needs, counted as docs/benchmarks.md says: a TCP
    connection 1, a TLS 1.3 handshake 1, each request 1, the requests of one round in
    flight together. The mount opens the first connection; later rows find it warm. A
    listing learns how many pages there are from its first page; then the warm
    connection takes one page per round trip at once, and (HTTP/1.1) `parallel - 1` new
    connections one each once their handshakes are done; h2 multiplexes `parallel` on
    the warm connection."""
    setup = 2 if tls else 1
    if op == MOUNT:
        return setup + 1
    if op in (FIRST, LOOKUP):
        return 1
    rest, k = pages - 1, 0
    while rest > 0:
        k += 1
        rest -= parallel if h2 else 1 + (parallel - 1) * (k > setup)
    return 1 + k


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.emu, port = start_tool([EMULATOR, "--port", "0", "--generate-pai",
                                     str(args.entries), "--latency-ms", str(args.latency)])
        self.emu_port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws = "1001"
        self.mnt = os.path.join(work, "mnt")
        os.mkdir(self.mnt)
        self.cfg = self.config("config", self.url)
        self.fs = None
        self.rows = []
        self.rss = 0
        self.cold_runs = []  # (seconds, steal ticks) of each cold ls at the latency
        self.peer_rows = {}
        self.peer_note = None
        self.fuse_rows = {}
        self.fuse_note = None
        self.fuse_short = False  # passthrough_ll ran out of descriptors
        self.rtt_rows = []
        self.rtt_missing = []
        self.cafile = None
        self.relay_log = None
        self.no_delay = None
        self.last = None

    def config(self, name, endpoint):
        path = os.path.join(self.work, name)
        with open(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600), "w") as f:
            f.write(f"[pai]\naccess_key_id = testak\naccess_key_secret = testsecret\n"
                    f"endpoint = {endpoint}\nworkspaces = {self.ws}\n")
        return path

    def options(self, cfg):
        return (f"config={cfg},parallel={self.args.parallel},dir_ttl=3600,attr_ttl=3600,"
                f"logfile={os.path.join(self.work, 'daemon.log')}")

    def daemon(self, mnt):
        proc = subprocess.Popen([self.args.binary, "-f", "-o", self.options(self.cfg), mnt])
        wait_mounted(mnt, tries=200)
        return proc

    def mount(self):
        """A new daemon: every row that says cold starts from one."""
        if self.fs:
            self.rss = max(self.rss, peak_rss_kib(self.fs.pid))
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
            self.fs.wait(timeout=30)
        self.fs = self.daemon(self.mnt)

    def copy_to(self, dest):
        """The tmpfs floor: the same tree, copied through a daemon of its own so that the
        measured mount's first visits stay first."""
        mnt = os.path.join(self.work, "copy")
        os.makedirs(mnt, exist_ok=True)
        proc = self.daemon(mnt)
        subprocess.run(["cp", "-r", os.path.join(mnt, "pai", self.ws), dest], check=True)
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        proc.wait(timeout=30)

    def control(self, path, body=None):
        """The emulator's control API; a clear error when the emulator is gone (on a
        shared machine something may have stopped it)."""
        try:
            return emu_call(self.url, path, body)
        except OSError as e:
            code = self.emu.poll()
            if code is not None:
                raise RuntimeError(f"the emulator exited with {code} during the bench") from e
            raise

    def requests(self):
        return self.control("/_emu/stats").get("total", 0)

    def reset_stats(self):
        self.control("/_emu/reset-stats", {})

    def sample(self, samples, name, cmd, floor_cmd=None, measure=timed):
        self.reset_stats()
        secs = measure(cmd)
        reqs = self.requests()
        floor = timed(floor_cmd) if floor_cmd else None
        samples.setdefault(name, []).append((secs, reqs, floor))

    def cold_sample(self, samples, d):
        """A cold ls, and the CPU time the host took from this machine meanwhile."""
        steal = host_steal()
        self.sample(samples, COLD_LS, f"ls {d}")
        self.cold_runs.append((samples[COLD_LS][-1][0], host_steal() - steal))

    def run(self):
        """Each row the median of --repeat runs; each run's cold rows on fresh daemons,
        its warm rows on the daemon of its cold ls."""
        a, d = self.args, os.path.join(self.mnt, "pai", self.ws)
        pages = math.ceil(a.entries / 100)
        lat = a.latency / 1000
        ideals = {FIRST_NEVER: lat, LOOKUP: lat,
                  COLD_LS: math.ceil((pages - 1) / a.parallel) * lat + lat}
        tmp = os.path.join("/dev/shm", f"codesrcfs-bench-{os.getpid()}")
        data = self.control("/_emu/data")
        last = self.last = data["pai"]["workspaces"][0]["code_sources"][-1]["DisplayName"]
        samples = {}
        self.copy_to(tmp)
        try:
            for _ in range(a.repeat):
                self.mount()
                self.sample(samples, FIRST_NEVER, f"next(os.scandir({d!r}))",
                            measure=self_timed)
                self.mount()
                self.sample(samples, LOOKUP, f"cat {d}/{last}/url")
                self.mount()
                self.cold_sample(samples, d)
                for name, cmd in WARM:
                    self.sample(samples, name, cmd.format(d=d), cmd.format(d=tmp))
                self.rss = max(self.rss, peak_rss_kib(self.fs.pid))
            # The cold ls is held to a target within a few per cent, and one run on this
            # shared machine moves by as much: more runs of it, each on a fresh daemon.
            for _ in range(a.cold_repeat - a.repeat):
                self.mount()
                self.cold_sample(samples, d)
                self.rss = max(self.rss, peak_rss_kib(self.fs.pid))
            # passthrough_ll first: the index copied in would be one more file to it.
            self.fuse_floor(tmp)
            self.index_rows(samples, ideals, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for name, got in samples.items():
            floors = [f for _, _, f in got if f is not None]
            self.rows.append((name, statistics.median(s for s, _, _ in got),
                              max(r for _, r, _ in got), ideals.get(name),
                              statistics.median(floors) if floors else None))

    def index_rows(self, samples, ideals, tmp):
        """One read of .index.jsonl (docs/design.md §1) against a url file per code source:
        each cold row from a fresh daemon, the warm ones against the tmpfs copy (the index
        copied beside the tree, since readdir never shows it)."""
        d = os.path.join(self.mnt, "pai", self.ws)
        jq, cat = "jq -r .url {}/.index.jsonl >/dev/null", "cat {}/*/url >/dev/null"
        ideals[INDEX_COLD_JQ] = ideals[INDEX_COLD_CAT] = ideals[COLD_LS]
        for _ in range(self.args.repeat):
            self.mount()
            self.sample(samples, INDEX_COLD_JQ, jq.format(d))
            self.mount()
            self.sample(samples, INDEX_COLD_CAT, cat.format(d))
            if not os.path.exists(os.path.join(tmp, ".index.jsonl")):
                shutil.copy(os.path.join(d, ".index.jsonl"), tmp)
            self.sample(samples, INDEX_WARM_JQ, jq.format(d), jq.format(tmp))
            self.sample(samples, INDEX_WARM_CAT, cat.format(d), cat.format(tmp))
            self.rss = max(self.rss, peak_rss_kib(self.fs.pid))

    def fuse_floor(self, tmp):
        """The warm rows on libfuse's passthrough_ll over the tmpfs copy, on a fresh mount
        whose directory was listed first (as codesrcfs's was by the cold ls): what FUSE
        itself costs for the same first visits. cache=always: the kernel keeps entries,
        attributes and pages, as it does for codesrcfs."""
        binary, self.fuse_note = build_passthrough_ll()
        if not binary:
            print("bench: no passthrough_ll row:", self.fuse_note, file=sys.stderr)
            return
        mnt = os.path.join(self.work, "passthrough_ll")
        os.makedirs(mnt, exist_ok=True)
        want = count_lines(f"find {tmp}")
        samples = {}
        for _ in range(self.args.repeat):
            proc = subprocess.Popen([binary, "-f", "-o", f"source={tmp},cache=always", mnt],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=lambda: raise_nofile(4 * want + 1024))
            if not wait_mounted(mnt, proc):
                self.fuse_note = "passthrough_ll did not mount"
                print("bench:", self.fuse_note, file=sys.stderr)
                proc.kill()
                return
            try:
                timed(f"ls {mnt}")
                for name, cmd in WARM:
                    samples.setdefault(name, []).append(timed(cmd.format(d=mnt)))
                got = count_lines(f"find {mnt}")
            finally:
                unmount(mnt, proc)
            if got != want:
                # It keeps a descriptor per inode: past its limit, look-ups fail fast.
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                self.fuse_note = (f"passthrough_ll served {got} of {want} paths; it holds a "
                                  f"descriptor for each, and the hard limit of open files "
                                  f"here is {hard}, so its times would be too short")
                print("bench:", self.fuse_note, file=sys.stderr)
                self.fuse_short = True
                return
        self.fuse_rows = {name: statistics.median(got) for name, got in samples.items()}

    def floor_run(self):
        """The rows on a listed directory, on codesrcfs and passthrough_ll only: the FUSE
        floor at a size passthrough_ll can serve when the main size was too large for it.
        Each run lists the directory cold on a fresh daemon, then the rows in WARM's order,
        as the main table does."""
        d = os.path.join(self.mnt, "pai", self.ws)
        tmp = os.path.join("/dev/shm", f"codesrcfs-bench-floor-{os.getpid()}")
        samples = {}
        self.copy_to(tmp)
        try:
            for _ in range(self.args.repeat):
                self.mount()
                timed(f"ls {d}")
                for name, cmd in WARM:
                    self.sample(samples, name, cmd.format(d=d))
            self.fuse_floor(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.rows = [(name, statistics.median(s for s, _, _ in got), max(r for _, r, _ in got),
                      None, None) for name, got in samples.items()]

    def peer_mount(self, argv, mnt):
        """A peer's daemon on mnt, or None when it did not mount."""
        os.makedirs(mnt, exist_ok=True)
        proc = subprocess.Popen(argv + [mnt], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if wait_mounted(mnt, proc):
            return proc
        proc.kill()
        return None

    def peer_row(self, cmd, measure=timed):
        """(seconds, API requests, stopped) of one row; a row past --peer-timeout is
        stopped and reported as such."""
        limit = self.args.peer_timeout
        self.reset_stats()
        if measure is timed:
            secs = timed(f"timeout {limit} sh -c '{cmd}'")
        else:
            try:
                secs = measure(cmd, timeout=limit)
            except subprocess.TimeoutExpired:
                secs = limit
        return secs, self.requests(), secs >= limit

    def peer(self, name, argv, last):
        """The same tree through a peer mounting the emulator's plain HTTP listings; argv
        ends where the mount point goes. Each cold row starts from a fresh daemon."""
        mnt = os.path.join(self.work, name)
        d = os.path.join(mnt, "pai", self.ws)
        rows = {}
        for label, cmd, measure in (
                (FIRST_NEVER, f"next(os.scandir({d!r}))",
                 self_timed),
                (LOOKUP, f"cat {d}/{last}/url", timed)):
            proc = self.peer_mount(argv, mnt)
            if not proc:
                return rows
            rows[label] = self.peer_row(cmd, measure)
            unmount(mnt, proc)
        proc = self.peer_mount(argv, mnt)
        if not proc:
            return rows
        rows[COLD_LS] = self.peer_row(f"ls {d}")
        for label, cmd in WARM:
            rows[label] = self.peer_row(cmd.format(d=d))
        unmount(mnt, proc)
        return rows

    def peers(self):
        tree = self.url + "/_tree/"
        cache = os.path.join(self.work, "rclone-cache")
        self.peer_rows = {
            "httpdirfs": self.peer("httpdirfs", ["httpdirfs", "-f", tree], self.last),
            "rclone": self.peer("rclone", ["rclone", "mount", "--http-url", tree, "--read-only",
                                           "--cache-dir", cache, "--dir-cache-time", "1h",
                                           "--attr-timeout", "1h", ":http:"], self.last),
        }

    # ---- real round trips: the relay in front of the emulator -------------------------

    def tls_missing(self):
        """Why this bench cannot measure TLS here, or None."""
        for tool, package in (("nghttpx", "nghttp2-proxy"), ("openssl", "openssl")):
            if not shutil.which(tool):
                return f"no {tool} (Debian package {package})"
        usage = subprocess.run([self.args.binary, "--help"], capture_output=True, text=True,
                               check=False)
        if "cafile=" not in usage.stdout + usage.stderr:
            return "this codesrcfs has no -o cafile= to trust the bench's CA"
        return None

    def transports(self):
        """Plain HTTP/1.1 to the emulator; over TLS 1.3, HTTP/1.1 and h2 through nghttpx
        when this machine and this codesrcfs can."""
        plain = Transport("HTTP/1.1, plain", self.emu_port)
        why = self.tls_missing()
        if why:
            self.rtt_missing = [(label, why) for label in ("HTTP/1.1, TLS", "h2, TLS")]
            return [plain]
        tls = make_ca(os.path.join(self.work, "ca"))
        self.cafile = tls[0]
        return [plain,
                Transport("HTTP/1.1, TLS", self.emu_port, tls, "http/1.1", self.work),
                Transport("h2, TLS", self.emu_port, tls, "h2", self.work)]

    def rtt(self):
        """Each transport's rows, each the median of --repeat runs on fresh daemons; the
        emulator answers at once, the relay holds the time."""
        self.control("/_emu/config", {"latency_ms": 0})
        self.relay_log = None
        cfg = self.config("config-direct", self.url)
        mnt = os.path.join(self.work, "rtt")
        os.makedirs(mnt, exist_ok=True)
        d = os.path.join(mnt, "pai", self.ws)
        self.no_delay = statistics.median(self.rtt_sample(cfg, mnt, COLD_LS, d, None)[0]
                                          for _ in range(self.args.repeat))
        for t in self.transports():
            t.start()
            wrong = None
            try:
                self.relay_log = os.path.join(self.work, f"relay-{len(self.rtt_rows)}.log")
                relay, port = start_tool([RELAY, "--listen", "0", "--target",
                                          f"127.0.0.1:{t.port}", "--rtt-ms",
                                          str(self.args.rtt), "--log", self.relay_log])
                try:
                    self.rtt_transport(t, f"{t.scheme}://127.0.0.1:{port}")
                finally:
                    stop_tool(relay)
            finally:
                wrong = t.stop()
            if wrong:
                raise RuntimeError(f"{t.label}: {wrong}")

    def connections(self):
        """Connections the relay has accepted so far."""
        if not self.relay_log:
            return 0
        try:
            with open(self.relay_log) as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def mount_detached(self, cfg, mnt, tls):
        """codesrcfs as a user runs it: the command returns once the credential check has
        passed and the mount is there. Its seconds."""
        opts = self.options(cfg) + (f",cafile={self.cafile}" if tls else "")
        t = time.monotonic()
        r = subprocess.run([self.args.binary, "-o", opts, mnt],
                           capture_output=True, text=True, check=False)
        secs = time.monotonic() - t
        if r.returncode != 0:
            raise RuntimeError(f"codesrcfs did not mount: {r.stderr.strip()}")
        return secs

    def rtt_sample(self, cfg, mnt, op, d, tls):
        """(seconds, API requests, new connections) of one operation on a fresh daemon."""
        self.reset_stats()
        conns = self.connections()
        secs = self.mount_detached(cfg, mnt, tls)
        try:
            if op != MOUNT:
                self.reset_stats()
                conns = self.connections()
                if op == FIRST:
                    secs = self_timed(f"next(os.scandir({d!r}))")
                elif op == LOOKUP:
                    secs = self_timed(f"open({os.path.join(d, self.last, 'url')!r}).read()")
                else:
                    secs = timed(f"ls {d}")
            return secs, self.requests(), self.connections() - conns
        finally:
            unmount(mnt)

    def rtt_transport(self, t, endpoint):
        a = self.args
        cfg = self.config("config-rtt", endpoint)
        mnt = os.path.join(self.work, "rtt")
        os.makedirs(mnt, exist_ok=True)
        d = os.path.join(mnt, "pai", self.ws)
        pages = math.ceil(a.entries / 100)
        for op in (MOUNT, FIRST, LOOKUP, COLD_LS):
            samples = [self.rtt_sample(cfg, mnt, op, d, t.tls) for _ in range(a.repeat)]
            secs = statistics.median(s for s, _, _ in samples)
            reqs = max(r for _, r, _ in samples)
            conns = max(c for _, _, c in samples)
            trips = ideal_round_trips(op, pages, a.parallel, bool(t.tls), t.h2)
            self.rtt_rows.append((op, t.label, secs, reqs, conns, trips))

    def close(self):
        if self.fs:
            unmount(self.mnt, self.fs)
        stop_tool(self.emu)


def cell(label):
    return label.replace("|", "\\|")  # "find | wc -l" is one cell


def ms(secs):
    return f"{secs * 1000:.1f} ms"


def table(b):
    a = b.args
    out = [f"## {a.entries:,} code sources, {a.latency:g} ms per request, parallel={a.parallel}",
           "",
           f"Median of {a.repeat} runs, of {max(a.repeat, a.cold_repeat)} for the cold ls "
           "(the peers: one).",
           "",
           "| operation | codesrcfs | API requests | ideal (cold) | ratio | tmpfs (warm) | ratio "
           "| passthrough_ll | ratio | httpdirfs (requests) | rclone (requests) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, secs, reqs, ideal, floor in b.rows:
        i = f"{ideal * 1000:.0f} ms" if ideal else ""
        ri = f"{secs / ideal:.2f}×" if ideal else ""
        f = ms(floor) if floor else ""
        rf = f"{secs / floor:.2f}×" if floor else ""
        fuse = b.fuse_rows.get(name)
        pf = ms(fuse) if fuse else ""
        rp = f"{secs / fuse:.2f}×" if fuse else ""
        peers = []
        for p in ("httpdirfs", "rclone"):
            got = b.peer_rows.get(p, {}).get(name)
            if not got:
                peers.append("n/a")
            elif got[2]:
                peers.append(f"> {got[0]:.0f} s, stopped ({got[1]})")
            else:
                peers.append(f"{ms(got[0])} ({got[1]})")
        out.append(f"| {cell(name)} | {ms(secs)} | {reqs} | {i} | {ri} | {f} | {rf} | {pf} | "
                   f"{rp} | {peers[0]} | {peers[1]} |")
    out += ["", *cold_spread(b.cold_runs),
            f"Daemon peak RSS: {b.rss / 1024:.1f} MiB "
            f"({b.rss * 1024 / a.entries:.0f} bytes per code source, everything listed).", ""]
    if b.fuse_note:
        out += [f"No passthrough_ll column: {b.fuse_note}.", ""]
    if b.peer_note:
        out += [f"The peers' rows did not finish: {b.peer_note}.", ""]
    return "\n".join(out)


def cold_spread(runs):
    """How the cold ls runs spread, and in how many the host took CPU time from this
    machine: the target is judged on the median of all of them, this says how much a
    run's luck weighs."""
    if not runs:
        return []
    secs = [t for t, _ in runs]
    calm = [t for t, steal in runs if steal == 0]
    line = f"The {len(runs)} cold ls runs: {ms(min(secs))} to {ms(max(secs))}; the host took "
    if len(calm) == len(runs):
        return [line + "no CPU time from this machine during them (steal in /proc/stat).", ""]
    line += (f"CPU time from this machine (steal in /proc/stat) during {len(runs) - len(calm)} "
             "of them")
    if len(calm) >= 3:
        line += f", and the median of the {len(calm)} others is {ms(statistics.median(calm))}"
    return [line + ".", ""]


def floor_fits():
    """Code sources passthrough_ll can serve under this process's hard limit of open
    files, rounded down to a thousand: it holds a descriptor for each path, about four per
    code source, and the daemon needs a few hundred of its own."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return max(0, (hard - 1024) // 4 // 1000 * 1000)


def floor_table(f):
    """The FUSE floor at the smaller size of floor_run, when the main size did not fit."""
    a = f.args
    out = [f"## The FUSE floor: {a.entries:,} code sources", "",
           "passthrough_ll could not serve the main table's size here (see its note), so "
           "the rows on a listed directory were run again at the largest size it can serve: "
           f"codesrcfs (a cold ls first, on a fresh daemon, {a.latency:g} ms per request) "
           f"against passthrough_ll over the same tree on tmpfs. Median of {a.repeat} runs.",
           "", "| operation | codesrcfs | API requests | passthrough_ll | ratio |",
           "|---|---|---|---|---|"]
    for name, secs, reqs, _, _ in f.rows:
        fuse = f.fuse_rows.get(name)
        pf, rp = (ms(fuse), f"{secs / fuse:.2f}×") if fuse else ("", "")
        out.append(f"| {cell(name)} | {ms(secs)} | {reqs} | {pf} | {rp} |")
    if f.fuse_note:
        out += ["", f"No passthrough_ll column: {f.fuse_note}."]
    return "\n".join(out + [""])


def rtt_table(b):
    a = b.args
    if not b.rtt_rows:
        return ""
    out = [f"## Round trips: {a.entries:,} code sources, RTT {a.rtt:g} ms on the wire, "
           f"parallel={a.parallel}",
           "",
           f"Median of {a.repeat} runs, each on a fresh daemon.",
           "",
           "| operation | transport | codesrcfs | API requests | new connections "
           "| ideal (round trips) | ratio |",
           "|---|---|---|---|---|---|---|"]
    for op, transport, secs, reqs, conns, trips in b.rtt_rows:
        ideal = trips * a.rtt / 1000
        out.append(f"| {cell(op)} | {transport} | {ms(secs)} | {reqs} | {conns} | "
                   f"{ideal * 1000:.0f} ms ({trips}) | {secs / ideal:.2f}× |")
    for transport, why in b.rtt_missing:
        out += ["", f"Not measured: {transport}: {why}."]
    if b.no_delay:
        out += ["", f"With no delay at all (the emulator answering at once, no relay) the "
                f"same cold ls takes {ms(b.no_delay)}: the emulator's, codesrcfs's and the "
                "kernel's own time on this machine, which no ideal counts."]
    return "\n".join(out + [""])


def verdict(ok):
    return "yes" if ok else "**no**"


def targets(b, floor=None):
    """The targets of the issue, met or not, from this run's numbers; the first-visit
    rows from the floor run's when the main table has no passthrough_ll column."""
    a = b.args
    out = ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for op, transport, secs, _, _, trips in b.rtt_rows:
        ideal = trips * a.rtt / 1000
        if op == FIRST:
            out.append(f"| first entry after mounting ≤ 1.2× one RTT ({transport}) | "
                       f"{ms(secs)} against {a.rtt:g} ms: {secs / ideal:.2f}× | "
                       f"{verdict(secs <= 1.2 * ideal)} |")
        if op == COLD_LS:
            out.append(f"| cold ls of {a.entries:,} ≤ 1.2× the round-trip ideal "
                       f"({transport}) | {ms(secs)} against {ideal * 1000:.0f} ms: "
                       f"{secs / ideal:.2f}× | {verdict(secs <= 1.2 * ideal)} |")
    for transport, _ in b.rtt_missing:
        out.append(f"| first entry and cold ls ({transport}) | not measured | n/a |")
    rows = {name: (secs, reqs, ideal, floor) for name, secs, reqs, ideal, floor in b.rows}
    if COLD_LS in rows:
        secs, _, ideal, _ = rows[COLD_LS]
        out.append(f"| cold ls at {a.latency:g} ms emulator latency ≤ 1.15× ideal | "
                   f"{ms(secs)} against {ideal * 1000:.0f} ms: {secs / ideal:.2f}× | "
                   f"{verdict(secs <= 1.15 * ideal)} |")
    src, at = b, ""
    if not b.fuse_rows and floor is not None and floor.fuse_rows:
        src, at = floor, f" ({floor.args.entries:,} code sources)"
    src_rows = {name: secs for name, secs, _, _, _ in src.rows}
    for name in FIRST_VISITS:
        fuse = src.fuse_rows.get(name)
        if name in src_rows and fuse:
            secs = src_rows[name]
            out.append(f"| {cell(name)} ≤ 1.5× passthrough_ll{at} | {ms(secs)} against "
                       f"{ms(fuse)}: {secs / fuse:.2f}× | {verdict(secs <= 1.5 * fuse)} |")
        elif name in rows:
            out.append(f"| {cell(name)} ≤ 1.5× passthrough_ll | no passthrough_ll | n/a |")
    warm = [(name, rows[name][1]) for name in [n for n, _ in WARM] + [INDEX_WARM_JQ,
                                                                      INDEX_WARM_CAT]
            if name in rows]
    if warm:
        asked = [f"{cell(n)}: {r}" for n, r in warm if r]
        out.append("| warm rows make no API request | "
                   + ("; ".join(asked) if asked else "0 on every warm row")
                   + f" | {verdict(not asked)} |")
    return "\n".join(out + [""])


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def write_doc(path, generated):
    """Replace the part between BEGIN and END (or the whole file when it has none)."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if BEGIN in old and END in old:
        text = old.split(BEGIN, 1)[0] + BEGIN + "\n" + generated + END + old.split(END, 1)[1]
    else:
        text = "# Benchmarks\n\n" + BEGIN + "\n" + generated + END + "\n"
    with open(path, "w") as f:
        f.write(text)


def memory_run(a, work, refreshes=10):
    """The memory run: the daemon's resident memory (VmRSS, KiB) after the first listing of
    a workspace of --memory-entries code sources, and after each of `refreshes` refreshes
    of it (SIGHUP, then the same ls). Memory a refresh frees must serve the next one, or be
    given back: the last figure stays near the first."""
    def rss(pid):
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    emu = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", "--generate-pai",
                            str(a.memory_entries)], stdout=subprocess.PIPE, text=True)
    url = "http://127.0.0.1:" + emu.stdout.readline().split()[1]
    cfg, mnt = os.path.join(work, "memory-config"), os.path.join(work, "memory")
    os.mkdir(mnt)
    with open(os.open(cfg, os.O_CREAT | os.O_WRONLY, 0o600), "w") as f:
        f.write(f"[pai]\naccess_key_id = testak\naccess_key_secret = testsecret\n"
                f"endpoint = {url}\nworkspaces = 1001\n")
    fs = subprocess.Popen([a.binary, "-f", "-o", f"config={cfg},dir_ttl=3600,attr_ttl=3600",
                           mnt], stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            if os.path.ismount(mnt):
                break
            time.sleep(0.05)
        d = os.path.join(mnt, "pai", "1001")
        figures = []
        for i in range(refreshes + 1):
            if i:
                fs.send_signal(signal.SIGHUP)
                time.sleep(0.5)
            subprocess.run(["ls", "-f", d], stdout=subprocess.DEVNULL, check=True)
            time.sleep(0.3)
            figures.append(rss(fs.pid))
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        fs.wait(timeout=30)
        emu.terminate()
        emu.wait(timeout=30)
    return figures


def memory_text(a, figures):
    first, last = figures[0], figures[-1]
    return "\n".join([
        f"## Memory: {a.memory_entries:,} code sources, {len(figures) - 1} refreshes", "",
        "Resident memory (VmRSS) after the first listing, then after each refresh "
        "(SIGHUP, then the same `ls`).", "",
        "| after | RSS | of the first |", "|---|---|---|",
        *(f"| {'first listing' if i == 0 else f'refresh {i}'} | {kib / 1024:.1f} MiB | "
          f"{kib / first:.2f}× |" for i, kib in enumerate(figures)),
        "", f"After {len(figures) - 1} refreshes: {last / 1024:.1f} MiB, {last / first:.2f}× "
        f"the first listing's {first / 1024:.1f} MiB (highest {max(figures) / first:.2f}×).",
        ""])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.path.join(ROOT, "build", "codesrcfs"))
    p.add_argument("--entries", type=int, default=10000)
    p.add_argument("--latency", type=float, default=20,
                   help="ms the emulator waits per request in the first part")
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--rtt", type=float, default=50,
                   help="ms of round trip the relay puts on the wire; 0 skips that part")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs of each codesrcfs and passthrough_ll row, the median written "
                   "(the peers run once)")
    p.add_argument("--cold-repeat", type=int, default=7,
                   help="runs of the cold ls at the emulator's latency, the median written "
                   "(at least --repeat)")
    p.add_argument("--no-peers", action="store_true", help="skip httpdirfs and rclone")
    p.add_argument("--peer-timeout", type=int, default=60,
                   help="seconds before a peer's row is stopped")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument("--memory-entries", type=int, default=50000,
                   help="code sources of the memory run (refreshes of one listing); 0 skips it")
    a = p.parse_args()
    load = [loadavg()]
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as work:
        b = Bench(a, work)
        try:
            b.run()
            if a.rtt > 0:
                b.rtt()
            if not a.no_peers:
                try:
                    b.peers()
                except RuntimeError as e:  # the rest is worth writing
                    b.peer_note = str(e)
                    print("bench: peers:", e, file=sys.stderr)
        finally:
            b.close()
        floor = None
        if b.fuse_short and floor_fits() >= 1000:
            floor_work = os.path.join(work, "floor")
            os.mkdir(floor_work)
            floor = Bench(argparse.Namespace(**{**vars(a), "entries": floor_fits()}),
                          floor_work)
            try:
                floor.floor_run()
            finally:
                floor.close()
        memory = memory_run(a, work) if a.memory_entries > 0 else None
    load.append(loadavg())
    text = "\n".join((table(b), floor_table(floor) if floor else "", rtt_table(b),
                      targets(b, floor), memory_text(a, memory) if memory else ""))
    print(text)
    head = (f"Written by `make bench` on {datetime.date.today()}, {platform.machine()}, "
            f"{os.cpu_count()} cores, {platform.platform()}; load average {load[0]} at the "
            f"start, {load[1]} at the end.\n\n")
    write_doc(a.out, head + text)


if __name__ == "__main__":
    main()
