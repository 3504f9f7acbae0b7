"""Fixtures: the emulator as a subprocess, and codesrcfs mounted for real against it.

    emulator(*args, tls=None)             → Emulator (.port .url .stats() .reset_stats()
                                            .configure(**knobs) .data() .stop(); with
                                            tls=True https://localhost:port and .cafile)
    test_ca                               → TestCA: a throwaway CA and certificates (session)
    mount(emu, config, opts=(), env=None, wait=True, timeout=MOUNT_TIMEOUT, limit_mb=None)
                                          → Mount (.path .log() .proc .config .kill())
    run_codesrcfs(args, env=None, timeout=10) → CompletedProcess (also a fixture)

Every wait is bounded, every test has an alarm, and a daemon that leaves a sanitizer
report or exits non-zero fails its test."""
import json
import os
import select
import shlex
import signal
import subprocess
import shutil
import ssl
import sys
import tempfile
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EMULATOR = os.path.join(ROOT, "tests", "emulator", "emulator.py")
BINARY = os.environ.get("CODESRCFS_BIN", os.path.join(ROOT, "build", "codesrcfs"))
# A command put before the binary, e.g. "valgrind --error-exitcode=1" (make check-valgrind).
WRAPPER = shlex.split(os.environ.get("CODESRCFS_WRAPPER", ""))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                   "WARNING: ThreadSanitizer")
# Credentials in the developer's environment must never reach a test's daemon.
CREDENTIAL_VARS = ("ALIBABA_CLOUD_", "ALIBABACLOUD_", "ALICLOUD_", "VOLCENGINE_", "VOLC_",
                   "CODEUP_TOKEN", "XDG_CONFIG_HOME")
# A proxy of the developer's would see the tests' traffic: a test sets its own.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY")
TEST_TIMEOUT = int(os.environ.get("CODESRCFS_TEST_TIMEOUT", "300"))
EMULATOR_START_TIMEOUT = 30   # 100,000 generated entries take a few seconds
MOUNT_TIMEOUT = 10
EXIT_TIMEOUT = 20

# The emulator's default credentials (tests/emulator/emulator.py --pai-key …).
PAI_KEY = ("testak", "testsecret")
VOLC_KEY = ("volcak", "volcsecret")
CODEUP_TOKEN = "pt-testtoken"

sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/: names_rules.py


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(n): this test's alarm, in seconds")


@pytest.fixture(autouse=True)
def bounded(request):
    """No test may hang: SIGALRM fails it after TEST_TIMEOUT seconds (or timeout_s(n))."""
    mark = request.node.get_closest_marker("timeout_s")
    limit = int(mark.args[0]) if mark else TEST_TIMEOUT

    def expired(signum, frame):
        raise TimeoutError(f"test ran longer than {limit} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(limit)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def clean_env(extra=None, home=None):
    """The environment for a child: no credential variables unless the test passes them,
    and a HOME of its own so no vendor credential file of the developer is read."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(CREDENTIAL_VARS) and k not in PROXY_VARS}
    if home:
        os.makedirs(home, exist_ok=True)
        env["HOME"] = str(home)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------------------- emulator


def read_line(stream, timeout):
    """One line from a binary pipe, or what came before the deadline or EOF."""
    deadline, buf = time.monotonic() + timeout, b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            break
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


class TestCA:
    """A CA made for this test session with the openssl command, and certificates it
    signed: .cert/.key for localhost and 127.0.0.1, .wrong_cert/.wrong_key for another
    host name. Nothing of it is kept in the repository."""

    def __init__(self, d):
        self.dir = d
        self.cafile = os.path.join(d, "ca.pem")
        self.cert, self.key = self.issue("localhost", "DNS:localhost,IP:127.0.0.1")
        self.wrong_cert, self.wrong_key = self.issue("wrong", "DNS:other.example")

    def openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60,
                       cwd=self.dir)

    def make_ca(self):
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                     "-subj", "/CN=codesrcfs test CA")

    def issue(self, name, san):
        if not os.path.exists(self.cafile):
            self.make_ca()
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext)
        return os.path.join(self.dir, f"{name}.pem"), os.path.join(self.dir, f"{name}.key")


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return TestCA(str(tmp_path_factory.mktemp("ca")))


class Emulator:
    def __init__(self, args, tmp, tls=None, cafile=None):
        self.stderr_path = os.path.join(tmp, f"emulator-{time.monotonic_ns()}.err")
        if tls:
            args = [*args, "--tls-cert", tls[0], "--tls-key", tls[1]]
        self.cafile = cafile
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, EMULATOR, "--port", "0", *args],
                                         stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL)
        line = read_line(self.proc.stdout, EMULATOR_START_TIMEOUT)
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"emulator did not start ({line!r}): {self.log()}")
        self.port = int(line.split()[1])
        self.url = f"https://localhost:{self.port}" if tls else f"http://127.0.0.1:{self.port}"
        # Never through a proxy of the environment; https trusts the test CA.
        handlers = [urllib.request.ProxyHandler({})]
        if tls:
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.check_hostname = False  # the control calls of a wrong-host-name test too
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self.opener = urllib.request.build_opener(*handlers)

    def log(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def _call(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data,
                                     method="POST" if body is not None else "GET")
        with self.opener.open(req, timeout=30) as r:
            return json.loads(r.read())

    def stats(self):
        """{"pai.ListCodeSources": n, …, "total": n, "fault.5xx": n, …, "conn.accepted": n,
        "conn.tls_handshakes": n}"""
        return self._call("/_emu/stats")

    def reset_stats(self):
        self._call("/_emu/reset-stats", {})

    def configure(self, **knobs):
        """Change knobs at run time; returns them all."""
        return self._call("/_emu/config", knobs)

    def data(self):
        """The data set served now (mutations included)."""
        return self._call("/_emu/data")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.stdout.close()
        return self.proc.returncode


@pytest.fixture
def emulator(tmp_path, request):
    """emulator(*args, tls=None): start tests/emulator/emulator.py with args, e.g.
    emulator("--generate-pai", 250, "--seed", 3). tls=True serves https with the test
    CA's localhost certificate; tls=(cert, key) with that one."""
    started = []

    def start(*args, tls=None):
        cafile = None
        if tls:
            ca = request.getfixturevalue("test_ca")
            cafile = ca.cafile
            if tls is True:
                tls = (ca.cert, ca.key)
        emu = Emulator([str(a) for a in args], str(tmp_path), tls, cafile)
        started.append(emu)
        return emu

    yield start
    crashed = []
    for emu in started:
        emu.stop()
        if "internal error" in emu.log():  # the emulator answers everything; a bug if not
            crashed.append(emu.log()[-2000:])
    if crashed:
        pytest.fail("emulator internal error:\n" + "\n".join(crashed))


# ---------------------------------------------------------------------------- mount


def unescape_mountinfo(field):
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def is_mount(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(unescape_mountinfo(line.split()[4]) == path for line in f)


def config_text(emu, config):
    """INI text from text (returned as is) or {section: {key: value}}; each section's
    endpoint defaults to the emulator."""
    if isinstance(config, str):
        return config
    lines = []
    for section, keys in config.items():
        keys = dict(keys)
        keys.setdefault("endpoint", emu.url)
        lines.append(f"[{section}]")
        for k, v in keys.items():
            if isinstance(v, (list, tuple)):
                v = ", ".join(v)
            lines.append(f"{k} = {v}")
        lines.append("")
    return "\n".join(lines)


def unmount(path):
    if is_mount(path):
        r = subprocess.run(["fusermount3", "-u", path], capture_output=True, timeout=30)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-uz", path], capture_output=True, timeout=30)


class Mount:
    def __init__(self, path, proc, log_path, config):
        self.path, self.proc, self.log_path, self.config = path, proc, log_path, config
        self.killed = False

    def log(self):
        """The daemon's stderr so far."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self):
        """SIGKILL the daemon, as a crash would, and wait for it; what it leaves mounted is
        the test's to check (the fixture then accepts its exit)."""
        self.killed = True
        self.proc.kill()
        return self.proc.wait(timeout=EXIT_TIMEOUT)

    def unmount(self):
        """Unmount and wait for the daemon: its exit code, or "killed"."""
        unmount(self.path)
        try:
            return self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            unmount(self.path)
            return "killed"


def sanitized(binary=BINARY):
    """Is the binary built with AddressSanitizer?"""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def memory_limit(limit_mb, env=None):
    """(wrapper, env) that keep the daemon under limit_mb MiB, so a test of a missing bound
    fails instead of taking the machine's memory: RLIMIT_AS through prlimit (malloc then
    fails), or under AddressSanitizer, which reserves terabytes of address space, its own
    hard_rss_limit_mb (the daemon then dies with a sanitizer report)."""
    env = dict(env or {})
    if sanitized():
        opts = [o for o in env.get("ASAN_OPTIONS", os.environ.get("ASAN_OPTIONS", "")).split(":")
                if o]
        env["ASAN_OPTIONS"] = ":".join(opts + [f"hard_rss_limit_mb={limit_mb}"])
        return [], env
    return ["prlimit", f"--as={limit_mb << 20}", "--"], env


@pytest.fixture
def mount(tmp_path):
    """mount(emu, config, opts=(), env=None, wait=True, timeout=10, limit_mb=None):
    codesrcfs -f in the background on a fresh mountpoint; config is INI text or
    {section: {key: value}}; limit_mb keeps the daemon under that much memory."""
    mounts = []

    def do_mount(emu, config, opts=(), env=None, wait=True, timeout=MOUNT_TIMEOUT,
                 limit_mb=None):
        n = len(mounts)
        cfg = tmp_path / f"config{n}"
        cfg.write_text(config_text(emu, config))
        cfg.chmod(0o600)
        mp = tmp_path / f"mnt{n}"
        mp.mkdir()
        log_path = tmp_path / f"codesrcfs{n}.log"
        options = ",".join([f"config={cfg}", *opts])
        limit = []
        if limit_mb:
            limit, env = memory_limit(limit_mb, env)
        with open(log_path, "w") as log:
            proc = subprocess.Popen([*limit, *WRAPPER, BINARY, "-f", "-o", options, str(mp)],
                                    env=clean_env(env, home=tmp_path / "home"),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log)
        m = Mount(str(mp), proc, str(log_path), str(cfg))
        mounts.append(m)
        deadline = time.monotonic() + timeout
        while wait and not is_mount(m.path):
            if proc.poll() is not None:
                pytest.fail(f"codesrcfs exited with {proc.returncode}: {m.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"codesrcfs did not mount within {timeout} s: {m.log()}")
            time.sleep(0.05)
        return m

    yield do_mount
    problems = []
    for m in mounts:
        rc = m.unmount()
        text = m.log()
        if any(mark in text for mark in SANITIZER_MARKS):
            problems.append(f"{m.path}: sanitizer report:\n{text[-4000:]}")
        elif rc not in (0, None) and not m.killed:
            problems.append(f"{m.path}: codesrcfs exited with {rc}:\n{text[-2000:]}")
    if problems:
        pytest.fail("\n".join(problems))


def run_codesrcfs(args, env=None, timeout=10):
    """Run codesrcfs in the foreground for a case that must not mount: CompletedProcess
    (text). A run that outlives timeout is killed, its mount (if any) undone, and the
    test fails."""
    args = [str(a) for a in args]
    home = tempfile.mkdtemp(prefix="codesrcfs-home-")
    proc = subprocess.Popen([*WRAPPER, BINARY, *args], env=clean_env(env, home=home),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        if args and os.path.isdir(args[-1]):
            unmount(args[-1])
        pytest.fail(f"codesrcfs {' '.join(args)} still ran after {timeout} s: {err[-2000:]}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if any(mark in err for mark in SANITIZER_MARKS):
        pytest.fail(f"sanitizer report:\n{err[-4000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(name="run_codesrcfs")
def run_codesrcfs_fixture():
    """The run_codesrcfs helper, as a fixture."""
    return run_codesrcfs
