"""What the daemon does to keep its credentials to itself: log lines scrubbed of its
secrets and of control bytes, the log file private, no credential in its environment (which
every child, fusermount3 included, inherits), no core dump or same-user ptrace, no
show_secrets for other users, and no configuration or credential file anyone else could
have changed."""
import errno
import os
import subprocess
import time

import pytest

from conftest import BINARY, CODEUP_TOKEN, clean_env, is_mount, unmount
from test_credentials_logs_xattrs import aliyun, ak
from test_volc_codeup import codeup_config

NOBODY = 65534


def codeup_endpoint_only(emu):
    """A configuration that holds no secret: the token comes from the environment."""
    return f"[codeup]\nendpoint = {emu.url}\norganizations = org-1\n"


def test_log_never_holds_the_token_nor_a_forged_line(emulator, mount, tmp_path):
    emu = emulator("--generate-codeup", "3")
    logfile = tmp_path / "log"
    old = os.umask(0o022)
    try:
        m = mount(emu, codeup_config(emu), opts=[f"logfile={logfile}", "retries=0"])
    finally:
        os.umask(old)
    forged = "2030-01-01T00:00:00Z codesrcfs[1]: error: forged"
    emu.configure(fail_5xx=1.0, error_message=f"token {CODEUP_TOKEN} refused\n{forged}\r")
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(m.path, "codeup", "org-1"))
    assert e.value.errno == errno.EIO
    text = logfile.read_text()
    assert "refused" in text  # the server's text is there, cleaned
    assert CODEUP_TOKEN not in text and CODEUP_TOKEN not in m.log()
    assert "token ****** refused\\x0a2030-01-01" in text
    assert not any(line.startswith("2030-") for line in text.splitlines())
    assert "\r" not in text
    assert os.stat(logfile).st_mode & 0o777 == 0o600


def launch(cmd, env):
    """Start a foreground daemon (cmd); wait for its mount. Returns the process."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not is_mount(cmd[-1]):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no mount: {proc.communicate(timeout=10)[1]}")
        time.sleep(0.05)
    return proc


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        try:
            with open(f"/proc/{p}/stat") as f:
                if p.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p))
        except OSError:
            pass
    return out


def fd_readable_without_ptrace_cap(pid):
    """Whether a process with the same uid and capabilities, less CAP_SYS_PTRACE, may look
    at pid's open files: the kernel lets it exactly when pid is dumpable."""
    r = subprocess.run(["setpriv", "--bounding-set=-sys_ptrace", "readlink", f"/proc/{pid}/fd/0"],
                       capture_output=True, text=True, timeout=10)
    return r.returncode == 0


def test_no_credential_in_the_environment_and_not_dumpable(emulator, tmp_path):
    emu = emulator("--generate-codeup", "3")
    cfg = tmp_path / "config"
    cfg.write_text(codeup_endpoint_only(emu))
    cfg.chmod(0o600)
    mp = tmp_path / "mnt"
    mp.mkdir()
    env = clean_env({"CODEUP_TOKEN": CODEUP_TOKEN, "KEEP_ME": "1"}, home=tmp_path / "home")
    # Without CAP_SYS_PTRACE, so that an observer with the same capabilities can tell.
    drop = ["setpriv", "--bounding-set=-sys_ptrace"]
    proc = launch([*drop, BINARY, "-f", "-o", f"config={cfg}", str(mp)], env)
    control = subprocess.Popen([*drop, "sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        assert os.listdir(mp / "codeup" / "org-1")  # the token from the environment works
        for pid in [proc.pid, *children(proc.pid)]:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
            assert b"CODEUP_TOKEN" not in environ and CODEUP_TOKEN.encode() not in environ
            assert b"KEEP_ME=1" in environ  # only the credentials go
        assert fd_readable_without_ptrace_cap(control.pid)  # the observer can see…
        assert not fd_readable_without_ptrace_cap(proc.pid)  # …but not the daemon
    finally:
        control.kill()
        control.wait(timeout=10)
        unmount(str(mp))
        assert proc.wait(timeout=20) == 0, proc.stderr.read()


def test_show_secrets_with_allow_other_is_refused(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-codeup", "3")
    cfg = tmp_path / "config"
    cfg.write_text(codeup_config(emu))
    cfg.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg},show_secrets,allow_other",
                       str(tmp_path / "mnt")])
    assert r.returncode != 0
    assert r.stderr.splitlines() == [
        "codesrcfs: show_secrets with allow_other would show every credential in meta.json "
        "to every user of this machine: refused"]
    assert not is_mount(str(tmp_path / "mnt"))


@pytest.mark.parametrize("mode,owner,needle", [
    (0o666, None, "can be changed by group or others (mode 0666); run chmod go-w"),
    (0o620, None, "can be changed by group or others (mode 0620)"),
    (0o600, NOBODY, f"belongs to uid {NOBODY}, not to you (uid 0) or root"),
])
def test_config_anyone_else_could_change_is_refused(emulator, tmp_path, run_codesrcfs, mode,
                                                    owner, needle):
    """The file holds no secret, only where to send the environment's token."""
    emu = emulator("--generate-codeup", "3")
    cfg = tmp_path / "config"
    cfg.write_text(codeup_endpoint_only(emu))
    cfg.chmod(mode)
    if owner is not None:
        os.chown(cfg, owner, -1)
    (tmp_path / "mnt").mkdir()
    emu.reset_stats()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")],
                      env={"CODEUP_TOKEN": CODEUP_TOKEN})
    assert r.returncode != 0
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"codesrcfs: {cfg}: ") and needle in lines[0]
    assert emu.stats().get("total", 0) == 0  # the token went nowhere


def test_vendor_file_of_another_user_is_refused(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    home = tmp_path / "home"
    aliyun(home, [ak("default")])
    os.chown(home / ".aliyun" / "config.json", NOBODY, -1)
    cfg = tmp_path / "config"
    cfg.write_text(f"[pai]\nendpoint = {emu.url}\n")
    cfg.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")],
                      env={"HOME": str(home)})
    assert r.returncode != 0
    assert f"config.json: belongs to uid {NOBODY}, not to you" in r.stderr
    assert "testsecret" not in r.stderr
