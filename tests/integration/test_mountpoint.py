"""The mount point and the daemon's life: no dead mount left by a killed daemon, a dead
one named with the command that clears it, non-empty and taken directories refused, paths
that outlive the daemon's chdir to /, a log that would go nowhere said at mount."""
import errno
import os
import shlex
import signal
import subprocess
import time
import uuid

import pytest

from conftest import BINARY, WRAPPER, clean_env, is_mount
from test_pai import pai_config, pai_files, pai_workspaces


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def proc_state(pid):
    """The state letter of /proc/pid/stat (Z a zombie), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_kill_9_of_a_used_mount_leaves_nothing_mounted(emulator, mount):
    """auto_unmount is the default: the mount goes with the daemon, also after the kernel
    stopped asking it about directories (no-opendir mode), where fusermount3 alone takes a
    dead mount for a live one."""
    emu = emulator("--generate-pai", "5")
    m = mount(emu, pai_config(emu))
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    assert os.listdir(os.path.join(m.path, "pai", ws))
    assert os.listdir(os.path.join(m.path, "pai"))  # a directory opened twice
    assert m.kill() == -signal.SIGKILL
    assert wait_for(lambda: not is_mount(m.path)), "the dead mount stayed"
    assert os.listdir(m.path) == []


@pytest.mark.parametrize("opts", [[], ["noauto_unmount", "auto_unmount"]])
def test_kill_9_before_any_use_leaves_nothing_mounted(emulator, mount, opts):
    """The default, or the last of the two options given."""
    emu = emulator("--generate-pai", "2")
    m = mount(emu, pai_config(emu), opts=opts)
    m.kill()
    assert wait_for(lambda: not is_mount(m.path)), "the dead mount stayed"


def test_the_guard_is_no_daemon_to_ps_and_leaves_with_it(emulator, mount):
    """The process that unmounts after a crash shows as codesrcfs-guard (pgrep -x codesrcfs
    and pgrep -f on the command line find only the daemon), holds nothing of the daemon's
    but its pipe, and ends when the daemon does."""
    emu = emulator("--generate-pai", "2")
    m = mount(emu, pai_config(emu))
    # The guard starts once the mount is up and renames itself after the fork: wait for it.
    guards = lambda: [c for c in children(m.proc.pid) if comm(c) == "codesrcfs-guard"]
    assert wait_for(lambda: len(guards()) == 1), "no guard beside the daemon"
    (guard,) = guards()
    with open(f"/proc/{guard}/cmdline", "rb") as f:
        assert f.read().rstrip(b"\0") == b"codesrcfs-guard"
    fds = sorted(os.listdir(f"/proc/{guard}/fd"), key=int)
    targets = [os.readlink(f"/proc/{guard}/fd/{fd}") for fd in fds]
    assert targets[:3] == ["/dev/null"] * 3 and len(targets) == 4, targets
    assert targets[3].startswith("pipe:"), targets
    assert m.unmount() == 0
    assert wait_for(lambda: proc_state(guard) in (None, "Z"))
    assert not is_mount(m.path)


def tcp_inodes():
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            inodes |= {line.split()[9] for line in list(f)[1:]} - {"0"}
    return inodes


def test_fusermount3_keeps_no_connection_of_the_daemon(emulator, mount):
    """The fusermount3 that auto_unmount leaves beside the daemon inherits what is not
    close-on-exec: it must not hold the daemon's connections to the cloud open."""
    emu = emulator("--generate-pai", "3")
    m = mount(emu, pai_config(emu))
    daemon = {os.readlink(f"/proc/{m.proc.pid}/fd/{fd}")
              for fd in os.listdir(f"/proc/{m.proc.pid}/fd")}
    assert {f"socket:[{i}]" for i in tcp_inodes()} & daemon  # the check's connection
    (fm,) = [c for c in children(m.proc.pid) if comm(c) == "fusermount3"]
    held = {os.readlink(f"/proc/{fm}/fd/{fd}") for fd in os.listdir(f"/proc/{fm}/fd")}
    assert not {f"socket:[{i}]" for i in tcp_inodes()} & held, held


def test_a_dead_mount_is_named_with_the_command_that_clears_it(emulator, mount,
                                                               run_codesrcfs):
    """noauto_unmount keeps the old behaviour: kill -9 leaves "Transport endpoint is not
    connected". Mounting there again says so in one line, with the fusermount3 -u that
    clears it; that command works, and then the mount does."""
    emu = emulator("--generate-pai", "3")
    m = mount(emu, pai_config(emu), opts=["noauto_unmount"])
    os.listdir(os.path.join(m.path, "pai"))
    m.kill()
    time.sleep(0.5)  # what a guard would have done by now
    assert is_mount(m.path)
    with pytest.raises(OSError) as e:
        os.statvfs(m.path)
    assert e.value.errno == errno.ENOTCONN
    mp = os.path.realpath(m.path)
    r = run_codesrcfs(["-f", "-o", f"config={m.config}", m.path])
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert "dead codesrcfs mount" in line and "Transport endpoint is not connected" in line
    assert line.endswith(f"clear it with: fusermount3 -u {mp}"), line
    cmd = shlex.split(line.split("clear it with: ", 1)[1])
    assert subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    assert not is_mount(m.path)
    m2 = mount(emu, pai_config(emu))
    assert os.listdir(os.path.join(m2.path, "pai"))


def test_a_non_empty_directory_is_refused_unless_nonempty(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    cfg, mp = pai_files(emu, tmp_path)
    (mp / "notes.txt").write_text("mine\n")
    r = run_codesrcfs(["-o", f"config={cfg}", mp])
    if is_mount(str(mp)):  # a daemon that should not be there
        subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True, timeout=30)
        pytest.fail("mounted over a non-empty directory")
    assert r.returncode == 1
    line = one_line(r.stderr)
    assert f"mount point {mp} is not empty" in line and "-o nonempty" in line
    assert emu.stats().get("total", 0) == 0  # refused before any request
    r = run_codesrcfs(["-o", f"config={cfg},nonempty", mp])  # daemonised: it returns
    try:
        assert r.returncode == 0, r.stderr
        assert os.listdir(mp) == ["pai"]
    finally:
        subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True, timeout=30)
    assert wait_for(lambda: not is_mount(str(mp)))
    assert os.listdir(mp) == ["notes.txt"]


def test_a_directory_something_is_mounted_on_is_refused(emulator, tmp_path, mount,
                                                        run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    cfg, mp = pai_files(emu, tmp_path)
    subprocess.run(["mount", "-t", "tmpfs", "codesrcfs-test", str(mp)], check=True)
    try:
        r = run_codesrcfs(["-f", "-o", f"config={cfg},nonempty", mp])
    finally:
        subprocess.run(["umount", str(mp)], check=True)
    assert r.returncode == 1
    assert one_line(r.stderr) == (f"codesrcfs: mount point {mp} is already a mount point "
                                  "(tmpfs): unmount it first, or choose another directory")
    m = mount(emu, pai_config(emu))  # a live codesrcfs is just as much a mount
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", m.path])
    assert r.returncode == 1
    assert "already a mount point (fuse.codesrcfs)" in one_line(r.stderr)
    assert os.listdir(m.path) == ["pai"]


def find_daemons(argv):
    """The pids of the processes whose command line is argv: the daemon, and for a moment
    after its fork the guard, until it renames itself."""
    want = "\0".join(argv) + "\0"
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                if f.read() == want and proc_state(pid) != "Z":
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


def test_relative_paths_outlive_the_daemons_chdir(emulator, tmp_path):
    """Started without -f from a directory of its own, with config=, logfile= and the
    mount point relative: the daemon chdir()s to /, and a SIGHUP after logrotate moved the
    log reopens it where it was, not under /."""
    emu = emulator("--generate-pai", "3")
    pai_files(emu, tmp_path)
    log_name = f"codesrcfs-{uuid.uuid4().hex}.log"
    argv = [*WRAPPER, BINARY, "-o", f"config=config,logfile={log_name}", "mnt"]
    r = subprocess.run(argv, cwd=tmp_path, env=clean_env(home=tmp_path / "home"),
                       capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert is_mount(str(tmp_path / "mnt"))
        assert wait_for(lambda: len(find_daemons(argv[len(WRAPPER):])) == 1)
        (pid,) = find_daemons(argv[len(WRAPPER):])
        assert comm(pid) == "codesrcfs" and os.readlink(f"/proc/{pid}/cwd") == "/"
        assert os.listdir(tmp_path / "mnt" / "pai")
        log = tmp_path / log_name
        assert log.exists()
        os.rename(log, tmp_path / (log_name + ".1"))
        os.kill(pid, signal.SIGHUP)
        assert wait_for(lambda: log.exists() and "SIGHUP" in log.read_text())
        assert not os.path.exists("/" + log_name)
    finally:
        if os.path.exists("/" + log_name):
            os.unlink("/" + log_name)
        subprocess.run(["fusermount3", "-u", str(tmp_path / "mnt")], capture_output=True)
    assert wait_for(lambda: find_daemons(argv[len(WRAPPER):]) == [])


SYSLOG_GONE = """
if [ -e /dev/log ]; then mount --bind {empty} /dev/log; fi
{bin} -o config={cfg}{extra} {mp}
ls {mp}/pai >/dev/null
fusermount3 -u {mp}
"""


@pytest.mark.parametrize("extra,warned", [("", True), (",logfile={log}", False)])
def test_a_log_that_goes_nowhere_is_said_at_mount(emulator, tmp_path, extra, warned):
    """Without -f the daemon logs through syslog(3): where no socket listens on /dev/log
    (a container; here a private mount namespace with an empty file laid over it, or no
    /dev/log at all) the mount says so once on stderr and points at -o logfile=."""
    cfg, mp = pai_files(emulator("--generate-pai", "2"), tmp_path)
    empty = tmp_path / "not-a-socket"
    empty.write_text("")
    script = SYSLOG_GONE.format(empty=empty, bin=" ".join([*WRAPPER, BINARY]), cfg=cfg, mp=mp,
                                extra=extra.format(log=tmp_path / "codesrcfs.log"))
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-ec", script],
                       env=clean_env(home=tmp_path / "home"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    if warned:
        assert one_line(r.stderr) == (
            "codesrcfs: warning: no syslog daemon listens on /dev/log: the log of this "
            "mount is lost; use -o logfile=PATH (or -f) to keep it")
    else:
        assert r.stderr == ""
    assert not is_mount(str(mp))
