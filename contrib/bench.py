#!/usr/bin/env python3
"""make bench: codesrcfs against the emulator with a per-request latency, row by row, with
the ideal beside each cold row and a tmpfs copy of the same tree as the floor of warm
rows. Writes the table to docs/benchmarks.md. Not part of make check."""
import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(ROOT, "tests", "emulator", "emulator.py")


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


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.emu = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", "--generate-pai",
                                     str(args.entries), "--latency-ms", str(args.latency)],
                                    stdout=subprocess.PIPE, text=True)
        self.url = "http://127.0.0.1:" + self.emu.stdout.readline().split()[1]
        self.ws = "1001"
        self.mnt = os.path.join(work, "mnt")
        os.mkdir(self.mnt)
        self.cfg = os.path.join(work, "config")
        with open(os.open(self.cfg, os.O_CREAT | os.O_WRONLY, 0o600), "w") as f:
            f.write(f"[pai]\naccess_key_id = testak\naccess_key_secret = testsecret\n"
                    f"endpoint = {self.url}\nworkspaces = {self.ws}\n")
        self.fs = None
        self.mount()
        self.rows = []
        self.rss = 0
        self.peer_rows = {}

    def daemon(self, mnt):
        proc = subprocess.Popen([self.args.binary, "-f", "-o",
                                 f"config={self.cfg},parallel={self.args.parallel},"
                                 f"dir_ttl=3600,attr_ttl=3600", mnt])
        for _ in range(200):
            if os.path.ismount(mnt):
                break
            time.sleep(0.05)
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

    def requests(self):
        return emu_call(self.url, "/_emu/stats").get("total", 0)

    def row(self, name, cmd, ideal=None, floor_cmd=None, measure=timed):
        emu_call(self.url, "/_emu/reset-stats", {})
        secs = measure(cmd)
        reqs = self.requests()
        floor = timed(floor_cmd) if floor_cmd else None
        self.rows.append((name, secs, reqs, ideal, floor))

    def run(self):
        a, d = self.args, os.path.join(self.mnt, "pai", self.ws)
        pages = math.ceil(a.entries / 100)
        lat = a.latency / 1000
        ideal_list = math.ceil((pages - 1) / a.parallel) * lat + lat
        tmp = os.path.join("/dev/shm", f"codesrcfs-bench-{os.getpid()}")
        data = emu_call(self.url, "/_emu/data")
        last = self.last = data["pai"]["workspaces"][0]["code_sources"][-1]["DisplayName"]
        self.row("first entry of a never-listed directory",
                 f"next(os.scandir({d!r}))", lat, measure=self_timed)
        self.mount()
        self.row("cold look-up of one name", f"cat {d}/{last}/url", lat)
        self.mount()
        self.row("cold ls", f"ls {d}", ideal_list)
        self.copy_to(tmp)
        self.row("warm ls -l", f"ls -l {d}", None, f"ls -l {tmp}")
        self.row("warm cat */url", f"cat {d}/*/url", None, f"cat {tmp}/*/url")
        self.row("warm cat */url (again)", f"cat {d}/*/url", None, f"cat {tmp}/*/url")
        for again in ("", " (again)"):
            self.row("find | wc -l" + again, f"find {d} | wc -l", None, f"find {tmp} | wc -l")
            self.row("grep -r" + again, f"grep -r -q zzz-no-match {d}", None,
                     f"grep -r -q zzz-no-match {tmp}")
        shutil.rmtree(tmp, ignore_errors=True)
        self.rss = max(self.rss, peak_rss_kib(self.fs.pid))
        self.index_rows()

    def index_rows(self):
        """One read of .index.jsonl (docs/design.md §1) against a url file per code source:
        each cold row from a fresh daemon, the warm ones against a tmpfs copy (the index
        copied beside the tree, since readdir never shows it)."""
        a, d = self.args, os.path.join(self.mnt, "pai", self.ws)
        lat = a.latency / 1000
        ideal = math.ceil((math.ceil(a.entries / 100) - 1) / a.parallel) * lat + lat
        jq, cat = "jq -r .url {}/.index.jsonl >/dev/null", "cat {}/*/url >/dev/null"
        self.mount()
        self.row("index: cold jq -r .url .index.jsonl", jq.format(d), ideal)
        self.mount()
        self.row("index: cold cat */url", cat.format(d), ideal)
        tmp = os.path.join("/dev/shm", f"codesrcfs-bench-index-{os.getpid()}")
        self.copy_to(tmp)
        shutil.copy(os.path.join(d, ".index.jsonl"), tmp)
        self.row("index: warm jq -r .url .index.jsonl", jq.format(d), None, jq.format(tmp))
        self.row("index: warm cat */url", cat.format(d), None, cat.format(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
        self.rss = max(self.rss, peak_rss_kib(self.fs.pid))

    def peer_mount(self, argv, mnt):
        """A peer's daemon on mnt, or None when it did not mount."""
        os.makedirs(mnt, exist_ok=True)
        proc = subprocess.Popen(argv + [mnt], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        for _ in range(400):
            if os.path.ismount(mnt):
                return proc
            time.sleep(0.05)
        proc.kill()
        return None

    def peer_unmount(self, proc, mnt):
        """Unmount; a row that was stopped may leave a reader inside: then lazily."""
        if subprocess.run(["fusermount3", "-u", mnt], check=False).returncode != 0:
            proc.kill()
            subprocess.run(["fusermount3", "-uz", mnt], check=False)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    def peer_row(self, cmd, measure=timed):
        """(seconds, API requests, stopped) of one row; a row past --peer-timeout is
        stopped and reported as such."""
        limit = self.args.peer_timeout
        emu_call(self.url, "/_emu/reset-stats", {})
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
                ("first entry of a never-listed directory", f"next(os.scandir({d!r}))",
                 self_timed),
                ("cold look-up of one name", f"cat {d}/{last}/url", timed)):
            proc = self.peer_mount(argv, mnt)
            if not proc:
                return rows
            rows[label] = self.peer_row(cmd, measure)
            self.peer_unmount(proc, mnt)
        proc = self.peer_mount(argv, mnt)
        if not proc:
            return rows
        for label, cmd in (("cold ls", f"ls {d}"), ("warm ls -l", f"ls -l {d}"),
                           ("warm cat */url", f"cat {d}/*/url"),
                           ("warm cat */url (again)", f"cat {d}/*/url"),
                           ("find | wc -l", f"find {d} | wc -l"),
                           ("grep -r", f"grep -r -q zzz-no-match {d}"),
                           ("find | wc -l (again)", f"find {d} | wc -l"),
                           ("grep -r (again)", f"grep -r -q zzz-no-match {d}")):
            rows[label] = self.peer_row(cmd)
        self.peer_unmount(proc, mnt)
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

    def close(self):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        self.fs.wait(timeout=30)
        self.emu.terminate()
        self.emu.wait(timeout=30)


def table(b):
    a = b.args
    out = [f"## {a.entries} code sources, {a.latency:g} ms per request, parallel={a.parallel}",
           "",
           "| operation | codesrcfs | API requests | ideal (cold) | ratio | tmpfs (warm) | ratio "
           "| httpdirfs (requests) | rclone (requests) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, secs, reqs, ideal, floor in b.rows:
        i = f"{ideal * 1000:.0f} ms" if ideal else ""
        ri = f"{secs / ideal:.2f}×" if ideal else ""
        f = f"{floor * 1000:.1f} ms" if floor else ""
        rf = f"{secs / floor:.2f}×" if floor else ""
        peers = []
        for p in ("httpdirfs", "rclone"):
            got = b.peer_rows.get(p, {}).get(name)
            if not got:
                peers.append("n/a")
            elif got[2]:
                peers.append(f"> {got[0]:.0f} s, stopped ({got[1]})")
            else:
                peers.append(f"{got[0] * 1000:.1f} ms ({got[1]})")
        label = name.replace("|", "\\|")  # "find | wc -l" is one cell
        out.append(f"| {label} | {secs * 1000:.1f} ms | {reqs} | {i} | {ri} | {f} | {rf} | "
                   f"{peers[0]} | {peers[1]} |")
    out += ["", f"Daemon peak RSS: {b.rss / 1024:.1f} MiB "
            f"({b.rss * 1024 / a.entries:.0f} bytes per code source, everything listed).", ""]
    return "\n".join(out)


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
        f"## Memory: {a.memory_entries} code sources, {len(figures) - 1} refreshes", "",
        "Resident memory (VmRSS) after the first listing, then after each refresh "
        "(SIGHUP, then the same `ls`).", "",
        "| after | RSS | of the first |", "|---|---|---|",
        *(f"| {'first listing' if i == 0 else f'refresh {i}'} | {kib / 1024:.1f} MiB | "
          f"{kib / first:.2f}× |" for i, kib in enumerate(figures)),
        "", f"After {len(figures) - 1} refreshes: {last / 1024:.1f} MiB, {last / first:.2f}× "
        f"the first listing's {first / 1024:.1f} MiB (highest {max(figures) / first:.2f}×).",
        ""])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=os.path.join(ROOT, "build", "codesrcfs"))
    p.add_argument("--entries", type=int, default=10000)
    p.add_argument("--latency", type=float, default=20)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--no-peers", action="store_true", help="skip httpdirfs and rclone")
    p.add_argument("--peer-timeout", type=int, default=60,
                   help="seconds before a peer's row is stopped")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    p.add_argument("--memory-entries", type=int, default=50000)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as work:
        b = Bench(a, work)
        try:
            b.run()
            if not a.no_peers:
                b.peers()
        finally:
            b.close()
        memory = memory_run(a, work)
    text = table(b) + "\n" + memory_text(a, memory)
    print(text)
    head = (f"# Benchmarks\n\nWritten by `make bench` on {datetime.date.today()}, "
            f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}.\n"
            "Ideal for a cold listing: one page, then ceil((pages - 1) / parallel) rounds, "
            "each one latency. Warm rows are compared with the same tree copied to tmpfs.\n"
            "The peers mount the emulator's plain HTTP listing of the same tree (same "
            "latency per request); n/a: a row the bench does not run for them.\n\n")
    with open(a.out, "w") as f:
        f.write(head + text)


if __name__ == "__main__":
    main()
