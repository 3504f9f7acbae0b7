"""`make install` into a staging root, then mounts through what it installed, the way
mount(8) and /etc/fstab do, against the emulator."""
import os
import shutil
import stat
import subprocess
import time

import pytest

from conftest import BINARY, ROOT, clean_env, is_mount
from test_pai import pai_config


def make_env():
    # The parent make (check-asan) exports BUILD=..., SANITIZE=... through MAKEFLAGS.
    env = clean_env()
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(k, None)
    return env


@pytest.fixture
def stage(tmp_path):
    """A staging root made by `make install DESTDIR=... PREFIX=/usr`, installing the
    binary under test (never rebuilt: -o marks it up to date)."""
    root = tmp_path / "stage"
    build = os.path.dirname(BINARY)
    r = subprocess.run(["make", "-s", "-C", ROOT, "-o", BINARY, f"BUILD={build}", "install",
                        f"DESTDIR={root}", "PREFIX=/usr"],
                       env=make_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture
def pai_emu(emulator, tmp_path):
    emu = emulator("--generate-pai", "6")
    cfg = tmp_path / "config"
    cfg.write_text(pai_config(emu))
    cfg.chmod(0o600)
    workspaces = sorted(w["WorkspaceId"] for w in emu.data()["pai"]["workspaces"])
    return emu, cfg, workspaces


def wait_unmounted(path, timeout=20):
    deadline = time.monotonic() + timeout
    while is_mount(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_mount(path)


def test_install_puts_every_file_in_place(stage):
    binary = stage / "usr/bin/codesrcfs"
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    with open(BINARY, "rb") as a, open(binary, "rb") as b:
        assert a.read() == b.read()
    man = stage / "usr/share/man/man1/codesrcfs.1"
    assert stat.S_IMODE(man.stat().st_mode) == 0o644
    assert man.read_text().startswith(".\\\"")
    helper = stage / "sbin/mount.codesrcfs"
    assert stat.S_IMODE(helper.stat().st_mode) == 0o755
    text = helper.read_text()
    assert "@" not in text.replace("$@", "") and "bin=$root/usr/bin/codesrcfs" in text
    assert os.readlink(stage / "sbin/mount.fuse.codesrcfs") == "mount.codesrcfs"
    unit = (stage / "usr/lib/systemd/user/codesrcfs.service").read_text()
    assert "ExecStart=/usr/bin/codesrcfs -f %h/src" in unit
    assert "ExecStop=fusermount3 -u %h/src" in unit and "Restart=on-failure" in unit
    assert os.access(stage / "usr/share/codesrcfs/clone-all.sh", os.X_OK)
    assert (stage / "usr/share/codesrcfs/fstab.example").is_file()


def test_uninstall_removes_what_install_put(stage):
    r = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={stage}", "PREFIX=/usr"],
                       env=make_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    left = [os.path.join(d, f) for d, _, files in os.walk(stage) for f in files]
    assert left == []


@pytest.mark.skipif(not shutil.which("man"), reason="man-db not installed")
def test_man_page_renders_without_warnings():
    r = subprocess.run(["man", "--warnings", "-l", os.path.join(ROOT, "docs", "codesrcfs.1")],
                       env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for word in ("SYNOPSIS", "config=PATH", "dir_ttl=S", "attr_ttl=S", "neg_ttl=S", "timeout=S",
                 "delay_connect", "retries=N", "parallel=N", "show_secrets", "--version",
                 "[codeup]", "CODEUP_TOKEN", "SIGHUP", "fuse.codesrcfs", "EXIT STATUS", "nonempty",
                 "auto_unmount", "noauto_unmount"):
        assert word in r.stdout, word


def test_staged_helper_mounts_as_mount8_calls_it(stage, pai_emu, tmp_path):
    """mount(8) runs /sbin/mount.fuse.codesrcfs SOURCE DIR -o OPTS with no PATH; the helper
    drops SOURCE and the options meant for mount(8), and runs the codesrcfs beside it."""
    emu, cfg, workspaces = pai_emu
    mp = tmp_path / "mnt"
    mp.mkdir()
    helper = str(stage / "sbin/mount.fuse.codesrcfs")
    opts = f"rw,config={cfg},_netdev,noauto,nofail,user,x-systemd.automount,dir_ttl=5"
    env = {k: v for k, v in clean_env().items() if k != "PATH"}
    r = subprocess.run([helper, "-f", "-v", "codesrcfs", str(mp), "-o", opts],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not is_mount(str(mp)), r.stderr
    assert f"{stage}/usr/bin/codesrcfs -o config={cfg},dir_ttl=5 {mp}" in r.stderr
    try:
        r = subprocess.run([helper, "codesrcfs", str(mp), "-o", opts, "-t", "fuse.codesrcfs"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert is_mount(str(mp))
        assert sorted(os.listdir(mp)) == ["pai"]
        assert sorted(os.listdir(mp / "pai")) == workspaces
    finally:
        subprocess.run(["fusermount3", "-u", str(mp)], capture_output=True, timeout=30)
    assert wait_unmounted(str(mp))


def test_staged_helper_refuses_a_bad_mount_with_status_1(stage, pai_emu, tmp_path):
    emu, cfg, _ = pai_emu
    mp = tmp_path / "mnt"
    mp.mkdir()
    r = subprocess.run([str(stage / "sbin/mount.codesrcfs"), "codesrcfs", str(mp), "-o",
                        f"config={cfg},colour=red"],
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and not is_mount(str(mp))
    r = subprocess.run([str(stage / "sbin/mount.codesrcfs"), "codesrcfs"],
                       env=clean_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "usage" in r.stderr


def in_namespace(stage, script, timeout=90, own_pids=False):
    """Run script in a private mount namespace where the staged sbin and bin are laid over
    /usr/sbin and /usr/bin, so mount(8) finds the staged helper where it looks (/sbin).
    Whatever the script mounts is unmounted before the namespace goes away. With own_pids,
    also in a PID namespace of its own: pgrep and kill there reach only its processes."""
    prologue = (
        "set -e\n"
        f"mount -t overlay overlay -o lowerdir={stage}/sbin:/usr/sbin /usr/sbin\n"
        f"mount -t overlay overlay -o lowerdir={stage}/usr/bin:/usr/bin /usr/bin\n")
    pids = ["-p", "-f", "--mount-proc"] if own_pids else []
    return subprocess.run(["unshare", "-m", "--propagation", "private", *pids, "sh", "-c",
                           prologue + script], env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


def namespaces_work(stage):
    if not shutil.which("unshare"):
        return False
    return in_namespace(stage, "test -x /sbin/mount.fuse.codesrcfs\n").returncode == 0


MOUNT_LS_UMOUNT = """
trap 'umount -l {mp} 2>/dev/null || true' EXIT
{mount}
grep -q ' {mp} fuse.codesrcfs ' /proc/self/mounts
echo "LS $(ls {mp}/pai | tr '\\n' ' ')"
umount {mp}
! grep -q ' {mp} ' /proc/self/mounts
echo DONE
"""


@pytest.mark.parametrize("how", ["mount -t", "fstab"])
def test_mount8_and_fstab_through_the_installed_helper(stage, pai_emu, tmp_path, how):
    if not namespaces_work(stage):
        pytest.skip("no private mount namespace with overlayfs here")
    emu, cfg, workspaces = pai_emu
    mp = tmp_path / "mnt"
    mp.mkdir()
    if how == "fstab":
        fstab = tmp_path / "fstab"
        fstab.write_text(f"# a comment\ncodesrcfs {mp} fuse.codesrcfs "
                         f"config={cfg},_netdev,noauto 0 0\n")
        cmd = f"mount -T {fstab} {mp}"
    else:
        cmd = f"mount -t fuse.codesrcfs codesrcfs {mp} -o config={cfg},_netdev,nofail"
    r = in_namespace(stage, MOUNT_LS_UMOUNT.format(mp=mp, mount=cmd))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"LS {' '.join(workspaces)} " in r.stdout and "DONE" in r.stdout, r.stdout
    assert not is_mount(str(mp))


@pytest.mark.parametrize("goal", [["all"], ["install", "DESTDIR={tmp}/stage"]])
def test_make_without_the_dev_packages_names_them_in_one_line(tmp_path, goal):
    """Where pkg-config finds none of the libraries (PKG_CONFIG_PATH an empty directory,
    PKG_CONFIG_LIBDIR empty: as on a machine without the -dev packages), make and make
    install stop before the compiler with one line naming the Debian packages and
    `make deps`, and compile nothing."""
    empty = tmp_path / "pkgconfig"
    empty.mkdir()
    build = tmp_path / "build"
    env = {**make_env(), "PKG_CONFIG_PATH": str(empty), "PKG_CONFIG_LIBDIR": ""}
    r = subprocess.run(["make", "-s", "-C", ROOT, f"BUILD={build}",
                        *[g.format(tmp=tmp_path) for g in goal]],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    (line,) = r.stderr.strip().splitlines()
    assert line.endswith("codesrcfs: missing build packages: libfuse3-dev "
                         "libcurl4-openssl-dev libjson-c-dev libssl-dev — run: make deps.  Stop."), line
    assert not build.exists() or not list(build.rglob("*.o"))
    assert not (tmp_path / "stage").exists()
