"""The Debian package, end to end (make check-deb, as root): `make deb` builds it from the
tree and lintian finds no error; apt-get installs it in a throwaway root (a private mount
namespace where /usr, /etc and /var are overlays whose writes land in a tmpfs, so the
machine's own files and package database stay as they are); mount(8) mounts the emulator
through the installed helper and a `url` is read; `dpkg -r` then leaves none of its
files behind, only configuration state until `dpkg -P`, after which nothing is left."""
import glob
import json
import os
import re
import shlex
import subprocess

import pytest

from conftest import ROOT, clean_env
from test_install import make_env

pytestmark = pytest.mark.timeout_s(900)

DEB_DIR = os.path.join(ROOT, "build", "deb")
URL = "https://git.example.com/team/deb-check.git"

# What a package's install and removal may leave in /usr, /etc and /var besides its own
# files: the package manager's records and caches, and the caches of triggers
# (man-db, ldconfig).
BOOKKEEPING = ("var/lib/dpkg/", "var/lib/apt/", "var/cache/apt/", "var/cache/debconf/",
               "var/cache/man/", "var/cache/ldconfig/", "var/log/", "etc/ld.so.cache")
# Kept from `dpkg -r` to `dpkg -P`, like configuration: whether the admin enabled the user
# unit for every user (dh_installsystemduser's maintainer scripts).
UNIT_STATE = "var/lib/systemd/deb-systemd-user-helper-enabled/"


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^VERSION\s*:=\s*(\S+)", f.read(), re.M).group(1)


def readme_deb_line():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    (line,) = [ln[4:] for ln in section.splitlines() if ln.startswith("    make deb")]
    return line.split("#")[0].strip()


def dpkg_status(package):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                       text=True)
    return r.stdout if r.returncode == 0 else "unknown"


@pytest.fixture(scope="module")
def deb():
    """`make deb` as the README says; the path of the one package its glob names."""
    assert os.geteuid() == 0, "make check-deb installs packages: run it as root"
    line = readme_deb_line()
    make, apt = (part.strip() for part in line.split("&&"))
    assert make == "make deb"
    assert apt.startswith("apt install ./")
    r = subprocess.run(["make", "-s", "-C", ROOT, "deb"], env=make_env(), capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    (path,) = glob.glob(os.path.join(ROOT, apt[len("apt install ./"):]))
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert os.path.basename(path) == f"codesrcfs_{makefile_version()}_{arch}.deb"
    return path


def test_lintian_reports_no_error(deb):
    """make deb failed had lintian found an error; its report says so too."""
    with open(os.path.join(DEB_DIR, "lintian.txt")) as f:
        report = f.read()
    assert not [ln for ln in report.splitlines() if ln.startswith("E:")], report


def test_package_holds_every_file_and_nothing_in_usr_local(deb):
    fields = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert f"Version: {makefile_version()}\n" in fields
    depends = [d.strip().split()[0] for d in fields.split("Depends:", 1)[1].split(",")]
    for lib in ("libfuse3-3", "libcurl4", "libjson-c5", "libssl3", "libc6", "fuse3"):
        assert lib in depends, fields
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True).stdout
    paths = {ln.split()[5].lstrip(".") for ln in listing.splitlines()}
    for path in ("/usr/bin/codesrcfs", "/sbin/mount.codesrcfs", "/sbin/mount.fuse.codesrcfs",
                 "/usr/share/man/man1/codesrcfs.1.gz", "/usr/lib/systemd/user/codesrcfs.service",
                 "/usr/share/codesrcfs/clone-all.sh", "/usr/share/codesrcfs/fstab.example",
                 "/usr/share/doc/codesrcfs/copyright", "/usr/share/doc/codesrcfs/README.md.gz",
                 "/usr/share/man/man8/mount.fuse.codesrcfs.8.gz"):
        assert path in paths, path
    assert not [p for p in paths if p.startswith("/usr/local")]
    helper = subprocess.run(f"dpkg-deb --fsys-tarfile {shlex.quote(deb)} | "
                            "tar -xOf - ./sbin/mount.codesrcfs", shell=True,
                            capture_output=True, text=True, check=True).stdout
    assert "bin=$root/usr/bin/codesrcfs" in helper and "@" not in helper.replace("$@", "")


# Run in the namespace: every step prints a tag the test reads back.
SCRIPT = r"""
set -eu
t={tmp}
mount -t tmpfs tmpfs "$t"
for d in usr etc var; do
	mkdir -p "$t/$d.upper" "$t/$d.work"
	mount -t overlay overlay -o "lowerdir=/$d,upperdir=$t/$d.upper,workdir=$t/$d.work" "/$d"
done
for d in bin sbin lib; do  # directories of their own where /usr is not merged
	[ -L "/$d" ] || {{ echo "/$d is not a symlink into /usr" >&2; exit 1; }}
done
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends {deb} >"$t/apt.log" 2>&1 || {{ cat "$t/apt.log"; exit 1; }}
echo "STATUS-INSTALLED $(dpkg-query -W -f='${{Status}}' codesrcfs)"
echo "VERSION $(codesrcfs --version)"
dpkg -L codesrcfs >"$t/files"
sed 's/^/FILE /' "$t/files"
trap 'umount -l {mp} 2>/dev/null || true' EXIT
mount -t fuse.codesrcfs codesrcfs {mp} -o config={cfg},_netdev,nofail
grep -q ' {mp} fuse.codesrcfs ' /proc/self/mounts
echo "URL $(cat {mp}/pai/77/deb-check/url)"
umount {mp}
! grep -q ' {mp} ' /proc/self/mounts
dpkg -r codesrcfs >"$t/remove.log" 2>&1 || {{ cat "$t/remove.log"; exit 1; }}
echo "STATUS-REMOVED $(dpkg-query -W -f='${{Status}}' codesrcfs 2>/dev/null || echo gone)"
while read -r f; do [ -d "$f" ] || ! [ -e "$f" -o -L "$f" ] || echo "LEFT $f"; done <"$t/files"
for d in usr etc var; do
	(cd "$t/$d.upper" && find . ! -type d ! -type c | sed "s|^\./|AFTER-REMOVE $d/|")
done
dpkg -P codesrcfs >"$t/purge.log" 2>&1 || {{ cat "$t/purge.log"; exit 1; }}
echo "STATUS-PURGED $(dpkg-query -W -f='${{Status}}' codesrcfs 2>/dev/null || echo gone)"
for d in usr etc var; do
	(cd "$t/$d.upper" && find . ! -type d ! -type c | sed "s|^\./|AFTER-PURGE $d/|")
done
"""


def test_apt_install_mount_read_url_remove(deb, tmp_path, emulator):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [{
        "WorkspaceId": "77", "WorkspaceName": "deb", "code_sources": [{
            "CodeSourceId": "code-1", "DisplayName": "deb-check", "CodeRepo": URL,
            "CodeBranch": "main", "CodeRepoAccessToken": "", "WorkspaceId": "77",
            "GmtCreateTime": "2024-01-01T00:00:00Z", "GmtModifyTime": "2024-01-01T00:00:00Z"}]}]}}))
    emu = emulator("--data", str(data))
    cfg = tmp_path / "config"
    cfg.write_text(f"[pai]\naccess_key_id = testak\naccess_key_secret = testsecret\n"
                   f"endpoint = {emu.url}\n")
    cfg.chmod(0o600)
    mp, ns = tmp_path / "mnt", tmp_path / "ns"
    mp.mkdir()
    ns.mkdir()
    host_status = dpkg_status("codesrcfs")
    script = SCRIPT.format(tmp=ns, deb=shlex.quote(deb), mp=mp, cfg=cfg)
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       env=clean_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = r.stdout.splitlines()
    tags = {}
    for ln in out:
        tag, _, rest = ln.partition(" ")
        tags.setdefault(tag, []).append(rest)

    assert tags["STATUS-INSTALLED"] == ["install ok installed"]
    assert tags["VERSION"][0].startswith(f"codesrcfs {makefile_version()} ")
    assert "/usr/bin/codesrcfs" in tags["FILE"] and "/sbin/mount.fuse.codesrcfs" in tags["FILE"]
    assert tags["URL"] == [URL]
    # Removed: every file it installed is gone; what stays until purge is configuration
    # state, here only deb-systemd-helper's record of the user unit's enablement (the
    # package has no conffiles).
    assert tags["STATUS-REMOVED"] == ["deinstall ok config-files"]
    assert "LEFT" not in tags, tags["LEFT"]
    left = [p for p in tags.get("AFTER-REMOVE", [])
            if not p.startswith(BOOKKEEPING + (UNIT_STATE,))]
    assert left == [], left
    # Purged: nothing at all.
    assert tags["STATUS-PURGED"][0] in ("gone", "unknown ok not-installed")
    left = [p for p in tags.get("AFTER-PURGE", []) if not p.startswith(BOOKKEEPING)]
    assert left == [], left
    # The machine itself: its package database never saw the package.
    assert dpkg_status("codesrcfs") == host_status
    assert not os.path.ismount(mp)
