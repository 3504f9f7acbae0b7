"""Credentials from the vendors' files and their order, logging, extended attributes, and
options that must be refused."""
import json
import os
import signal
import time

import pytest

from test_pai import pai_config, pai_files, pai_workspaces


def write_private(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def aliyun(home, profiles, current="default"):
    write_private(home / ".aliyun" / "config.json",
                  json.dumps({"current": current, "profiles": profiles}))


def ak(name, secret="testsecret", mode="AK", **extra):
    return dict(name=name, mode=mode, access_key_id="testak", access_key_secret=secret,
                region_id="cn-hangzhou", **extra)


def test_aliyun_cli_profile_current_and_named(emulator, mount, tmp_path):
    emu = emulator("--generate-pai", "5")
    home = tmp_path / "home"
    aliyun(home, [ak("default"), ak("other", secret="wrong")])
    m = mount(emu, f"[pai]\nendpoint = {emu.url}\n", env={"HOME": str(home)})
    assert os.listdir(os.path.join(m.path, "pai"))
    aliyun(home, [ak("default", secret="wrong"), ak("good")])
    m2 = mount(emu, f"[pai]\nendpoint = {emu.url}\n", opts=["profile=good"],
               env={"HOME": str(home)})
    assert os.listdir(os.path.join(m2.path, "pai"))


def test_aliyun_sts_profile(emulator, mount, tmp_path):
    emu = emulator("--generate-pai", "5", "--pai-sts", "sts-from-cli")
    home = tmp_path / "home"
    aliyun(home, [ak("default", mode="StsToken", sts_token="sts-from-cli")])
    m = mount(emu, f"[pai]\nendpoint = {emu.url}\n", env={"HOME": str(home)})
    assert os.listdir(os.path.join(m.path, "pai"))


@pytest.mark.parametrize("profiles,opts,needle", [
    ([ak("default", mode="RamRoleArn")], [], "reads only AK and StsToken"),
    ([ak("default")], ["profile=nope"], "no profile named 'nope'"),
])
def test_aliyun_profile_errors(emulator, tmp_path, run_codesrcfs, profiles, opts, needle):
    emu = emulator("--generate-pai", "5")
    home = tmp_path / "home"
    aliyun(home, profiles)
    cfg = tmp_path / "config"
    write_private(cfg, f"[pai]\nendpoint = {emu.url}\n")
    (tmp_path / "mnt").mkdir()
    o = ",".join([f"config={cfg}", *opts])
    r = run_codesrcfs(["-f", "-o", o, str(tmp_path / "mnt")], env={"HOME": str(home)})
    assert r.returncode != 0 and needle in r.stderr
    assert "testsecret" not in r.stderr


def test_group_readable_vendor_file_is_refused(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "5")
    home = tmp_path / "home"
    aliyun(home, [ak("default")])
    (home / ".aliyun" / "config.json").chmod(0o644)
    cfg = tmp_path / "config"
    write_private(cfg, f"[pai]\nendpoint = {emu.url}\n")
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")],
                      env={"HOME": str(home)})
    assert r.returncode != 0 and "readable by group or others" in r.stderr


def test_order_environment_then_config_then_vendor_files(emulator, mount, tmp_path):
    emu = emulator("--generate-pai", "3", "--generate-volc", "3")
    home = tmp_path / "home"
    aliyun(home, [ak("default", secret="wrong-from-vendor")])
    write_private(home / ".volc" / "config", json.dumps({"ak": "volcak", "sk": "volcsecret"}))
    # the config file wins over the vendor file
    m = mount(emu, pai_config(emu) + f"[volc]\nendpoint = {emu.url}\n", env={"HOME": str(home)})
    assert sorted(os.listdir(m.path)) == ["pai", "volc"]  # volc from ~/.volc/config
    assert os.listdir(os.path.join(m.path, "volc"))
    # the environment wins over the config file
    m2 = mount(emu, pai_config(emu, secret="wrong-in-file") + f"[volc]\nendpoint = {emu.url}\n", env={
        "HOME": str(home), "ALIBABA_CLOUD_ACCESS_KEY_ID": "testak",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"})
    assert os.listdir(os.path.join(m2.path, "pai"))


def test_secrets_are_not_accepted_as_options(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    cfg = tmp_path / "config"
    write_private(cfg, pai_config(emu))
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg},access_key_secret=hunter2",
                       str(tmp_path / "mnt")])
    assert r.returncode != 0
    assert "not accepted as -o options" in r.stderr and "hunter2" not in r.stderr


def test_allow_other_warns(emulator, mount):
    emu = emulator("--generate-pai", "3")
    m = mount(emu, pai_config(emu), opts=["allow_other"])
    assert "allow_other" in m.log()


def test_logfile_gets_the_lines_and_is_reopened_on_sighup(emulator, mount, tmp_path):
    emu = emulator("--generate-pai", "3")
    log = tmp_path / "codesrcfs.log"
    m = mount(emu, pai_config(emu), opts=[f"logfile={log}", "debug"])
    os.listdir(os.path.join(m.path, "pai"))
    text = log.read_text()
    assert "ListWorkspaces" in text and "request id" in text and "testsecret" not in text
    os.rename(log, tmp_path / "codesrcfs.log.1")
    m.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10  # the file appears a moment before its first line
    while not (log.exists() and "SIGHUP" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "SIGHUP" in log.read_text()


def test_debug_traces_each_api_call_with_its_page(emulator, mount):
    emu = emulator("--generate-pai", "250")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=["debug"])
    os.listdir(os.path.join(m.path, "pai", ws))
    log = m.log()
    for page in (1, 2, 3):
        assert f"ListCodeSources ws={ws} page {page}" in log
    assert "-> 200 in" in log


def test_extended_attributes(emulator, mount):
    emu = emulator("--generate-pai", "30", "--generate-codeup", "10")
    m = mount(emu, pai_config(emu) +
              f"[codeup]\ntoken = pt-testtoken\nendpoint = {emu.url}\norganizations = org-1\n")
    ws = pai_workspaces(emu)[0]
    cs = ws["code_sources"][-1]  # past the awkward names: its display name is its entry name
    d = os.path.join(m.path, "pai", ws["WorkspaceId"], cs["DisplayName"])
    assert os.getxattr(d, "user.codesrcfs.provider") == b"pai"
    assert os.getxattr(d, "user.codesrcfs.id") == cs["CodeSourceId"].encode()
    assert set(os.listxattr(d)) == {"user.codesrcfs.provider", "user.codesrcfs.id"}
    group = emu.data()["codeup"]["organizations"][0]["namespaces"][0]
    g = os.path.join(m.path, "codeup", "org-1", group["path"])
    assert os.getxattr(g, "user.codesrcfs.web_url") == group["webUrl"].encode()
    assert os.getxattr(g, "user.codesrcfs.id") == str(group["id"]).encode()
    with pytest.raises(OSError):
        os.getxattr(d, "user.other")
    with pytest.raises(OSError):
        os.setxattr(d, "user.codesrcfs.id", b"x")


def test_daemonised_logs_go_to_syslog(emulator, tmp_path):
    """Without -f the daemon logs through syslog(3), which writes to /dev/log: a socket of
    this test's takes its place (a symlink where the machine has none, else a bind mount in
    a private mount namespace), and a SIGHUP's line arrives there with name and pid."""
    import socket
    import subprocess

    from conftest import BINARY, WRAPPER, clean_env, is_mount

    cfg, mp = pai_files(emulator("--generate-pai", "3"), tmp_path)
    sock_path = str(tmp_path / "log")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(10)
    script = (f"{' '.join(WRAPPER)} {BINARY} -o config={cfg} {mp}\n"
              f"pid=$(pgrep -f -x '.*{BINARY} -o config={cfg} {mp}' | head -n 1)\n"
              f"kill -HUP $pid\necho $pid\nsleep 1\nfusermount3 -u {mp}\n")
    made_link = not os.path.lexists("/dev/log")
    if made_link:
        os.symlink(sock_path, "/dev/log")
        argv = ["sh", "-ec", script]
    else:
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-ec",
                f"mount --bind {sock_path} /dev/log\n" + script]
    try:
        r = subprocess.run(argv, env=clean_env(home=tmp_path / "home"), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "syslog" not in r.stderr  # something listens: no warning at mount
        pid = r.stdout.split()[-1]
        lines = []
        while not any("SIGHUP: dropping every cache" in ln for ln in lines):
            lines.append(sock.recv(4096).decode(errors="replace"))
    finally:
        if made_link:
            os.unlink("/dev/log")
        sock.close()
        if is_mount(str(mp)):
            subprocess.run(["fusermount3", "-uz", str(mp)], check=False)
    line = next(ln for ln in lines if "SIGHUP" in ln)
    assert f"codesrcfs[{pid}]:" in line, line
    assert "testsecret" not in "".join(lines)
