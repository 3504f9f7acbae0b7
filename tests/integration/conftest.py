"""Fixtures: the emulator as a subprocess, and codesrcfs mounted for real against it.
Every wait is bounded; a daemon that leaves a sanitizer report fails its test."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EMULATOR = os.path.join(ROOT, "tests", "emulator", "emulator.py")
BINARY = os.environ.get("CODESRCFS_BIN", os.path.join(ROOT, "build", "codesrcfs"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                   "WARNING: ThreadSanitizer")
CREDENTIAL_VARS = ("ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_", "VOLCENGINE_", "VOLC_",
                   "CODEUP_TOKEN")
TEST_TIMEOUT = 300

sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def bounded():
    """No test may hang: SIGALRM fails it after TEST_TIMEOUT seconds."""
    def expired(signum, frame):
        raise TimeoutError(f"test ran longer than {TEST_TIMEOUT} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_VARS)}
    env.update(extra or {})
    return env


class Emulator:
    def __init__(self, args, tmp):
        self.stderr_path = os.path.join(tmp, f"emulator-{time.monotonic_ns()}.err")
        self.proc = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"),
                                     text=True)
        line = self.proc.stdout.readline()  # bounded by the autouse alarm
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError("emulator did not start: " + open(self.stderr_path).read())
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, path, body=None):
        req = urllib.request.Request(self.url + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stats(self):
        return self._call("/_emu/stats")

    def reset_stats(self):
        self._call("/_emu/reset-stats", {})

    def configure(self, **knobs):
        return self._call("/_emu/config", knobs)

    def data(self):
        return self._call("/_emu/data")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def emulator(tmp_path):
    started = []

    def start(*args):
        emu = Emulator([str(a) for a in args], str(tmp_path))
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def is_mount(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Mount:
    def __init__(self, path, proc, log_path):
        self.path, self.proc, self.log_path = path, proc, log_path

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def unmount(self):
        if is_mount(self.path):
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True, timeout=30)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", self.path], capture_output=True, timeout=30)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return "killed"


@pytest.fixture
def mount(tmp_path):
    mounts = []

    def do_mount(emu, config_text, opts=(), env=None, wait=True):
        n = len(mounts)
        cfg = tmp_path / f"config{n}"
        cfg.write_text(config_text)
        cfg.chmod(0o600)
        mp = tmp_path / f"mnt{n}"
        mp.mkdir()
        log_path = tmp_path / f"codesrcfs{n}.log"
        options = ",".join([f"config={cfg}", *opts])
        proc = subprocess.Popen([BINARY, "-f", "-o", options, str(mp)], env=clean_env(env),
                                stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
        m = Mount(str(mp), proc, str(log_path))
        mounts.append(m)
        deadline = time.monotonic() + 20
        while wait and not is_mount(m.path):
            if proc.poll() is not None:
                pytest.fail(f"codesrcfs exited with {proc.returncode}: {m.log()}")
            if time.monotonic() > deadline:
                pytest.fail("codesrcfs did not mount within 20 s: " + m.log())
            time.sleep(0.05)
        return m

    yield do_mount
    problems = []
    for m in mounts:
        rc = m.unmount()
        text = m.log()
        if any(mark in text for mark in SANITIZER_MARKS):
            problems.append(f"{m.path}: sanitizer report:\n{text[-4000:]}")
        elif rc not in (0, None):
            problems.append(f"{m.path}: codesrcfs exited with {rc}:\n{text[-2000:]}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def run_codesrcfs():
    """Run codesrcfs in the foreground for a case that must not mount."""
    def run(args, env=None, timeout=60):
        return subprocess.run([BINARY, *args], env=clean_env(env), capture_output=True,
                              text=True, timeout=timeout)
    return run
