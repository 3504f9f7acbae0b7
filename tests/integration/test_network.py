"""The real network: TLS with a test CA, messages that name the cause, proxies (Debian's
tinyproxy), kept connections and HTTP/2 (Debian's nghttpx), all on loopback."""
import os
import subprocess

import pytest

from conftest import (BINARY, SANITIZER_MARKS, WRAPPER, clean_env, is_mount, run_codesrcfs,
                      unmount)
from ports import free_port, wait_port
from test_pai import pai_config, pai_workspaces
from test_volc_codeup import codeup_config


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def refused(tmp_path, emu, config, opts=(), env=None, args=()):
    """Run a mount that must fail: (CompletedProcess, the lines of its stderr)."""
    cfg = tmp_path / "config"
    cfg.write_text(config)
    cfg.chmod(0o600)
    mp = tmp_path / "mnt"
    mp.mkdir(exist_ok=True)
    r = run_codesrcfs(["-f", *args, "-o", ",".join([f"config={cfg}", *opts]), mp], env=env)
    assert r.returncode != 0 and not is_mount(str(mp)), r.stderr
    return r, r.stderr.strip().splitlines()


# ---------------------------------------------------------------------------- TLS


def test_tls_mount_with_cafile(emulator, mount, test_ca):
    emu = emulator("--generate-pai", "30", tls=True)
    ws = pai_workspaces(emu)[0]
    m = mount(emu, pai_config(emu), opts=[f"cafile={test_ca.cafile}"])
    wsdir = os.path.join(m.path, "pai", ws["WorkspaceId"])
    names = os.listdir(wsdir)
    assert len(names) == 30
    urls = {open(os.path.join(wsdir, n, "url")).read().strip() for n in names}
    assert urls == {c["CodeRepo"] for c in ws["code_sources"]}
    s = emu.stats()
    assert s["conn.tls_handshakes"] == s["conn.accepted"] >= 1


def test_relative_cafile_still_found_once_daemonised(emulator, test_ca, tmp_path):
    """cafile= relative to where codesrcfs was started; the daemon lives in / (and its
    HTTP engine restarts after the fork, keeping the check's connection)."""
    emu = emulator("--generate-pai", "5", tls=True)
    cfg = tmp_path / "config"
    cfg.write_text(pai_config(emu))
    cfg.chmod(0o600)
    mp = tmp_path / "mnt"
    mp.mkdir()
    r = subprocess.run([*WRAPPER, BINARY, "-o", f"config={cfg},cafile=ca.pem", str(mp)],
                       cwd=test_ca.dir, env=clean_env(home=tmp_path / "home"),
                       capture_output=True, text=True, timeout=30)
    try:
        assert r.returncode == 0, r.stderr
        emu.reset_stats()
        ws = pai_workspaces(emu)[0]["WorkspaceId"]
        assert len(os.listdir(mp / "pai" / ws)) == 5
        assert emu.stats().get("conn.accepted", 0) == 0
    finally:
        unmount(str(mp))


def test_tls_without_cafile_is_refused_in_one_line(emulator, tmp_path):
    emu = emulator("--generate-pai", "5", tls=True)
    r, lines = refused(tmp_path, emu, pai_config(emu))
    assert len(lines) == 1, r.stderr
    assert f"localhost:{emu.port}" in lines[0] and "certificate" in lines[0]
    assert "not trusted" in lines[0]
    assert emu.stats().get("total", 0) == 0


def test_certificate_for_another_host_is_refused_in_one_line(emulator, test_ca, tmp_path):
    emu = emulator("--generate-pai", "5", tls=(test_ca.wrong_cert, test_ca.wrong_key))
    r, lines = refused(tmp_path, emu, pai_config(emu), opts=[f"cafile={test_ca.cafile}"])
    assert len(lines) == 1, r.stderr
    assert f"localhost:{emu.port}" in lines[0] and "certificate" in lines[0]
    assert "another host name" in lines[0]
    assert emu.stats().get("total", 0) == 0


@pytest.mark.parametrize("opt", ["insecure", "ssl_verify=0", "no_verify_peer", "verify=off",
                                 "sslverify=false", "tls_verify=0"])
def test_certificate_checks_cannot_be_turned_off(emulator, tmp_path, opt):
    emu = emulator("--generate-pai", "5", tls=True)
    refused(tmp_path, emu, pai_config(emu), opts=[opt])
    assert emu.stats().get("conn.tls_handshakes", 0) == 0


def test_unreadable_cafile_is_refused(emulator, tmp_path):
    emu = emulator("--generate-pai", "5", tls=True)
    r, lines = refused(tmp_path, emu, pai_config(emu), opts=["cafile=/nonexistent/ca.pem"])
    assert len(lines) == 1 and "cafile=/nonexistent/ca.pem" in lines[0], r.stderr


# ---------------------------------------------------------------------------- causes


def test_unresolved_name_fails_once_naming_the_host(tmp_path):
    """In a network namespace of its own (no resolver reachable): nothing leaves the
    machine, and the name does not resolve."""
    cfg, mp = tmp_path / "config", tmp_path / "mnt"
    cfg.write_text("[pai]\naccess_key_id = testak\naccess_key_secret = testsecret\n"
                   "endpoint = https://nonexistent.invalid\n")
    cfg.chmod(0o600)
    mp.mkdir()
    for debug in (False, True):
        cmd = ["unshare", "-n", *WRAPPER, BINARY, "-f", *(["-d"] if debug else []),
               "-o", f"config={cfg}", str(mp)]
        r = subprocess.run(cmd, env=clean_env(home=tmp_path / "home"), capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0 and not is_mount(str(mp))
        assert not any(mark in r.stderr for mark in SANITIZER_MARKS), r.stderr
        assert "nonexistent.invalid: name not resolved" in r.stderr, r.stderr
        if debug:  # -d shows every attempt: there was one
            assert "(attempt 1)" in r.stderr and "(attempt 2)" not in r.stderr, r.stderr
            assert "retry" not in r.stderr
        else:
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_refused_connection_named_in_the_log_at_run_time(emulator, mount):
    emu = emulator("--generate-pai", "5")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    port = free_port()  # nothing listens there
    config = pai_config(emu, workspaces=[ws]).replace(emu.url, f"http://127.0.0.1:{port}")
    m = mount(emu, config, opts=["delay_connect", "retries=1", "timeout=2"])
    with pytest.raises(OSError):
        os.listdir(os.path.join(m.path, "pai", ws))
    assert f"127.0.0.1:{port}: connection refused" in m.log()


def test_unanswered_mount_check_names_the_cause_in_one_line(emulator, tmp_path):
    emu = emulator("--generate-pai", "5", "--stall", "1", "--stall-s", "30")
    r, lines = refused(tmp_path, emu, pai_config(emu), opts=["timeout=1", "retries=1"])
    assert len(lines) == 1, r.stderr
    assert f"127.0.0.1:{emu.port}: timed out" in lines[0]


# ---------------------------------------------------------------------------- proxies


class Tinyproxy:
    """Debian's tinyproxy on a free loopback port, with a configuration of the test's own
    (the package's service is never used)."""

    def __init__(self, d):
        self.port = free_port()
        self.log_path = os.path.join(d, "tinyproxy.log")
        conf = os.path.join(d, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write(f"Port {self.port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\n"
                    f"Allow 127.0.0.1\nLogFile \"{self.log_path}\"\nLogLevel Connect\n")
        self.proc = subprocess.Popen(["tinyproxy", "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "tinyproxy")
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self):
        """The request lines it received, e.g. "CONNECT localhost:4433 HTTP/1.1"."""
        with open(self.log_path, errors="replace") as f:
            return [ln.split("): ", 1)[1].strip() for ln in f if "Request (file descriptor" in ln]


@pytest.fixture
def tinyproxy(tmp_path):
    p = Tinyproxy(str(tmp_path))
    yield p
    stop(p.proc)


def list_and_read(m, ws):
    wsdir = os.path.join(m.path, "pai", ws)
    names = os.listdir(wsdir)
    for n in names:
        open(os.path.join(wsdir, n, "url")).read()
    return names


@pytest.mark.parametrize("var", ["https_proxy", "HTTPS_PROXY", "all_proxy"])
def test_https_goes_through_the_proxy(emulator, mount, test_ca, tinyproxy, var):
    emu = emulator("--generate-pai", "120", tls=True)
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), env={var: tinyproxy.url},
              opts=[f"cafile={test_ca.cafile}", "parallel=4"])
    assert len(list_and_read(m, ws)) == 120
    seen = tinyproxy.requests()
    # One tunnel per connection the emulator accepted: every one came through the proxy.
    assert seen and all(r == f"CONNECT localhost:{emu.port} HTTP/1.1" for r in seen), seen
    assert len(seen) == emu.stats()["conn.accepted"]


def test_no_proxy_bypasses_the_proxy(emulator, mount, test_ca, tinyproxy):
    emu = emulator("--generate-pai", "40", tls=True)
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]),
              env={"https_proxy": tinyproxy.url, "no_proxy": "localhost"},
              opts=[f"cafile={test_ca.cafile}"])
    assert len(list_and_read(m, ws)) == 40
    assert tinyproxy.requests() == []


def test_plain_http_loopback_never_goes_through_a_proxy(emulator, mount, tinyproxy):
    """The Codeup token and the signatures travel in clear over http://: a proxy must
    never see them, whatever the environment says."""
    emu = emulator("--generate-pai", "40", "--generate-codeup", "20")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    env = {"http_proxy": tinyproxy.url, "HTTP_PROXY": tinyproxy.url, "all_proxy": tinyproxy.url}
    m = mount(emu, pai_config(emu, workspaces=[ws]) + codeup_config(emu), env=env)
    assert len(list_and_read(m, ws)) == 40
    assert os.listdir(os.path.join(m.path, "codeup", "org-1"))
    assert tinyproxy.requests() == []
    assert emu.stats()["conn.accepted"] >= 1


# ---------------------------------------------------------------------------- connections


def test_the_mount_checks_connection_serves_the_first_listings(emulator, mount):
    emu = emulator("--generate-pai", "50")
    w1, w2 = (w["WorkspaceId"] for w in pai_workspaces(emu)[:2])
    m = mount(emu, pai_config(emu, workspaces=[w1, w2]))
    assert emu.stats()["conn.accepted"] == 1  # the check
    emu.reset_stats()
    assert len(os.listdir(os.path.join(m.path, "pai", w1))) == 50
    assert emu.stats().get("conn.accepted", 0) == 0
    assert os.listdir(os.path.join(m.path, "pai", w2))
    s = emu.stats()
    assert s.get("conn.accepted", 0) == 0 and s["pai.ListCodeSources"] == 2


@pytest.mark.parametrize("tls", [False, True])
def test_cold_listing_opens_at_most_parallel_connections(emulator, mount, test_ca, tls):
    emu = emulator("--generate-pai", "1000", tls=tls)
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    opts = ["parallel=8"] + ([f"cafile={test_ca.cafile}"] if tls else [])
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=opts)
    emu.reset_stats()
    assert len(os.listdir(os.path.join(m.path, "pai", ws))) == 1000
    s = emu.stats()
    assert s["pai.ListCodeSources"] == 10
    assert s.get("conn.accepted", 0) <= 8 - 1  # the check's connection is one of the 8
    assert s.get("conn.tls_handshakes", 0) == (s.get("conn.accepted", 0) if tls else 0)


class Nghttpx:
    """Debian's nghttpx as a TLS + HTTP/2 front end of the plain emulator. Its access log
    names each request's client port: one port, one connection."""

    def __init__(self, d, backend_port, cert, key):
        self.port = free_port()
        self.log_path = os.path.join(d, "nghttpx-access.log")
        self.proc = subprocess.Popen(
            ["nghttpx", "--conf=/dev/null", f"--frontend=127.0.0.1,{self.port}",
             f"--backend=127.0.0.1,{backend_port}", "--workers=1", "--no-ocsp",
             f"--accesslog-file={self.log_path}",
             "--accesslog-format=$remote_port $alpn $status $request",
             f"--errorlog-file={os.path.join(d, 'nghttpx-error.log')}", key, cert],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "nghttpx")
        self.url = f"https://localhost:{self.port}"

    def requests(self):
        """(client port, ALPN, request line) of every request served so far."""
        with open(self.log_path, errors="replace") as f:
            return [tuple(ln.rstrip("\n").split(" ", 3)[i] for i in (0, 1, 3)) for ln in f]


@pytest.fixture
def h2_mount(emulator, mount, test_ca, tmp_path):
    """mount_with(parallel) → (emulator, workspace directory, nghttpx): a workspace of 1,000
    code sources mounted through nghttpx, TLS and h2; nghttpx stopped after the test."""
    fronts = []

    def mount_with(parallel):
        emu = emulator("--generate-pai", "1000")
        ws = pai_workspaces(emu)[0]["WorkspaceId"]
        front = Nghttpx(str(tmp_path), emu.port, test_ca.cert, test_ca.key)
        fronts.append(front)
        config = pai_config(emu, workspaces=[ws]).replace(emu.url, front.url)
        m = mount(emu, config, opts=[f"cafile={test_ca.cafile}", f"parallel={parallel}"])
        return emu, os.path.join(m.path, "pai", ws), front

    yield mount_with
    for front in fronts:
        stop(front.proc)


def test_http2_multiplexes_a_cold_listing_on_one_connection(h2_mount):
    emu, wsdir, front = h2_mount(8)
    assert len(os.listdir(wsdir)) == 1000
    seen = front.requests()
    pages = [r for r in seen if "/api/v1/codesources?" in r[2]]
    assert len(pages) == 10
    assert {alpn for _, alpn, _ in seen} == {"h2"}
    assert len({port for port, _, _ in seen}) == 1, seen  # the check's, reused


def test_http2_keeps_parallel_requests_in_flight_and_no_more(h2_mount):
    """On one h2 connection nothing but the pager's request slots bounds the streams (no
    connection limit applies): at 50 ms a request, a cold listing of ten pages has
    exactly `parallel` of them at the server at once, though it runs more threads."""
    emu, wsdir, front = h2_mount(3)
    emu.reset_stats()
    emu.configure(latency_ms=50)
    assert len(os.listdir(wsdir)) == 1000
    assert {alpn for _, alpn, _ in front.requests()} == {"h2"}
    assert emu.stats()["in_flight.max"] == 3
