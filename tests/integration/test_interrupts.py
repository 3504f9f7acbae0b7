"""Readers that give up, and stops, while the cloud stalls (docs/design.md §2, §3): a
reader interrupted (Ctrl-C, a signal, `timeout`) while it waits on the network gets
EINTR at once, other readers of the same directory get their answer, the daemon stays
healthy; SIGTERM and SIGINT unmount and exit at once whatever the network is doing.

The emulator holds every request (`stall`) until the test lets them go. HANG is a bound
on a hang, not a claim about speed: the promise is 0.2 s, and what this catches took
77 s (a reader) and 76.9 s (SIGTERM) with the default timeouts."""
import errno
import os
import signal
import subprocess
import time

import pytest

from conftest import is_mount
from test_pai import expected_names, pai_config, pai_workspaces
from test_volc_codeup import volc_config

HANG = 3


def stalled(emulator, mount):
    """A mount with the default timeouts (the longest waits) over an emulator that holds
    every request from now on; the directory of the first PAI workspace."""
    emu = emulator("--generate-pai", "30")
    ws = pai_workspaces(emu)[0]
    m = mount(emu, pai_config(emu, workspaces=[ws["WorkspaceId"]]))
    emu.configure(stall=1.0, stall_s=300)
    return emu, m, os.path.join(m.path, "pai", ws["WorkspaceId"]), ws


def held(emu, n):
    """Wait until the emulator holds n requests (bounded by the test's alarm)."""
    while emu.stats().get("fault.stall", 0) < n:
        time.sleep(0.02)


def run_timed(cmd):
    start = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r, time.monotonic() - start


def names_of(ws):
    """The names a listing of ws shows, as bytes (the generated names are awkward)."""
    return sorted(expected_names(ws["code_sources"]).values())


def listing(path):
    return sorted(os.listdir(os.fsencode(path)))


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("sig", ["INT", "TERM", "KILL"])
def test_a_signalled_ls_returns_at_once_and_the_mount_stays_healthy(emulator, mount, sig):
    """timeout -s INT is Ctrl-C; SIGKILL too waits for the daemon's answer in the kernel."""
    emu, m, wsdir, ws = stalled(emulator, mount)
    r, took = run_timed(["timeout", "-s", sig, "1", "ls", wsdir])
    assert r.returncode in (124, -signal.SIGKILL) and took < HANG, (r, took)
    assert ": error:" not in m.log()  # a reader that gave up is no failure
    emu.configure(stall=0.0)
    assert listing(wsdir) == names_of(ws)


@pytest.mark.timeout_s(120)
def test_kill_of_cat_returns_at_once(emulator, mount):
    emu, m, wsdir, ws = stalled(emulator, mount)
    name = next(n.decode() for n in names_of(ws) if n.isalnum() or n.startswith(b"code-"))
    r, took = run_timed(["timeout", "-s", "KILL", "1", "cat", os.path.join(wsdir, name, "url")])
    assert r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) and took < HANG, (r, took)
    emu.configure(stall=0.0)
    with open(os.path.join(wsdir, name, "url")) as f:
        assert f.read().startswith("https://")


@pytest.mark.timeout_s(120)
def test_a_reader_interrupted_by_a_signal_it_handles_gets_eintr(emulator, mount, tmp_path):
    """A reader with a signal handler sees the call fail with EINTR itself."""
    emu, m, wsdir, ws = stalled(emulator, mount)
    script = tmp_path / "reader.py"
    script.write_text(
        "import os, signal, sys\n"
        "signal.signal(signal.SIGALRM, lambda *a: None)\n"
        "signal.setitimer(signal.ITIMER_REAL, 1.0)\n"
        "try:\n"
        "    os.listdir(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(e.errno)\n")
    r, took = run_timed(["/usr/bin/python3", str(script), wsdir])
    assert r.stdout.strip() == str(errno.EINTR) and took < HANG, (r, took)
    emu.configure(stall=0.0)
    assert listing(wsdir) == names_of(ws)


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("interrupted_first", [False, True],
                         ids=["waiter-interrupted", "fetcher-interrupted"])
def test_the_other_reader_of_the_directory_gets_its_listing(emulator, mount,
                                                            interrupted_first):
    """Two readers of one directory: whichever is interrupted, waiting for the other's
    fetch or fetching itself, the other one gets the whole listing once the cloud answers."""
    emu, m, wsdir, ws = stalled(emulator, mount)
    if interrupted_first:  # it fetches; the other waits for its fetch
        interrupted = subprocess.Popen(["timeout", "-s", "INT", "2", "ls", wsdir],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        held(emu, 1)
        other = subprocess.Popen(["ls", wsdir], stdout=subprocess.PIPE)
    else:
        other = subprocess.Popen(["ls", wsdir], stdout=subprocess.PIPE)
        held(emu, 1)
        interrupted = subprocess.Popen(["timeout", "-s", "INT", "1", "ls", wsdir],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = time.monotonic()
    assert interrupted.wait(timeout=60) == 124
    assert time.monotonic() - start < HANG + 2
    assert other.poll() is None  # still waiting for the cloud, not failed
    if interrupted_first:
        held(emu, 2)  # it asks for itself now
    emu.configure(stall=0.0)
    out, _ = other.communicate(timeout=60)
    assert other.returncode == 0
    assert sorted(out.split(b"\n")[:-1]) == names_of(ws)


@pytest.mark.timeout_s(120)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stop_signal_unmounts_at_once_whatever_the_network(emulator, mount, sig):
    """Three ls of never-listed directories wait on a stalled cloud, one request each; the
    mount root still answers; SIGTERM (SIGINT) then ends the daemon and the mount at once,
    and each ls gets an answer (EIO), not a connection cut."""
    emu = emulator("--generate-pai", "30", "--generate-volc", "5")
    wss = [w["WorkspaceId"] for w in pai_workspaces(emu)][:2]
    volc = emu.data()["volc"]["workspaces"][0]["Id"]
    m = mount(emu, pai_config(emu, workspaces=wss) + volc_config(emu, workspaces=[volc]))
    emu.configure(stall=1.0, stall_s=300)
    dirs = [os.path.join(m.path, "pai", w) for w in wss] + [os.path.join(m.path, "volc", volc)]
    readers = [subprocess.Popen(["ls", d], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True) for d in dirs]
    held(emu, 3)
    r, took = run_timed(["stat", m.path])
    assert r.returncode == 0 and took < HANG, (r, took)
    start = time.monotonic()
    m.proc.send_signal(sig)
    assert m.proc.wait(timeout=60) == 0, m.log()
    assert time.monotonic() - start < HANG, m.log()
    assert not is_mount(m.path)
    for p in readers:
        _, err = p.communicate(timeout=HANG)
        assert p.returncode != 0 and "Input/output error" in err, err  # answered, not cut
    assert f"{signal.Signals(sig).name}: unmounting" in m.log()
