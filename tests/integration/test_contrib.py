"""contrib/clone-all.sh against a mount of the emulator whose urls are local bare repositories."""
import collections
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from test_pai import pai_config
from test_volc_codeup import codeup_config

CLONE_ALL = os.path.join(ROOT, "contrib", "clone-all.sh")
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]


def git(*args, **kw):
    return subprocess.run([*GIT, *args], check=True, capture_output=True, text=True, timeout=60,
                          **kw)


def make_repo(tmp_path, name, branches=("main",), bare=None):
    """A working repository and its bare clone (at bare, else repos/<name>.git), holding
    every branch of branches; returns (work, bare)."""
    work = tmp_path / "work" / name
    git("init", "-q", "-b", branches[0], str(work))
    (work / "README").write_text(f"{name}\n")
    git("-C", str(work), "add", "README")
    git("-C", str(work), "commit", "-qm", "init")
    for b in branches[1:]:
        git("-C", str(work), "branch", b)
    bare = bare or tmp_path / "repos" / f"{name}.git"
    git("clone", "-q", "--bare", str(work), str(bare))
    return work, bare


def emulator_with_repos(tmp_path, emulator, pai_sources, codeup_count):
    """The emulator with the given PAI sources in workspace 7 and codeup_count generated
    Codeup repositories, each url of which is made a bare repository holding its branch.
    Returns (emulator, the set of every clone url)."""
    sources = []
    for i, (name, branch, url) in enumerate(pai_sources):
        sources.append({"CodeSourceId": f"code-{i}", "DisplayName": name, "CodeRepo": url,
                        "CodeBranch": branch, "CodeRepoAccessToken": "", "WorkspaceId": "7",
                        "GmtCreateTime": f"2024-01-0{i + 1}T00:00:00Z",
                        "GmtModifyTime": f"2024-01-0{i + 1}T00:00:00Z"})
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": "7", "WorkspaceName": "w", "code_sources": sources}]}}))
    base = tmp_path / "codeup-repos"
    emu = emulator("--data", str(data), "--generate-codeup", str(codeup_count),
                   "--git-base", f"file://{base}")
    urls = {url for _, _, url in pai_sources}
    repos = emu.data().get("codeup", {}).get("organizations", [{}])[0].get("repositories", [])
    branches = sorted({r["defaultBranch"] for r in repos} | {"main"})
    template = None
    for r in repos:
        url = r["httpUrlToRepo"]
        assert url.startswith(f"file://{base}/")
        if template is None:
            _, template = make_repo(tmp_path, "codeup-template", branches)
        shutil.copytree(template, url[len("file://"):])
        urls.add(url)
    return emu, urls


def repositories_in(mount_path, urls):
    """Relative paths of the mount's directories whose url is one of urls."""
    found = set()
    for d, _, files in os.walk(mount_path):
        if "url" in files:
            with open(os.path.join(d, "url")) as f:
                if f.read().strip() in urls:
                    found.add(os.path.relpath(d, mount_path))
    return found


def run_clone_all(src, dest, jobs=3):
    return subprocess.run(["sh", CLONE_ALL, "-j", str(jobs), str(src), str(dest)],
                          capture_output=True, text=True, timeout=240)


def clones(dest):
    found = set()
    for d, dirs, _ in os.walk(dest):
        if ".git" in dirs:
            found.add(os.path.relpath(d, dest))
            dirs[:] = []
    return found


def branch_of(path):
    return git("-C", str(path), "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()


def test_clone_all_clones_every_repository_then_updates(tmp_path, emulator, mount):
    alpha, alpha_bare = make_repo(tmp_path, "alpha")
    _, beta_bare = make_repo(tmp_path, "beta", ("main", "dev"))
    _, gamma_bare = make_repo(tmp_path, "gamma")
    emu, urls = emulator_with_repos(tmp_path, emulator, [
        ("alpha", "main", f"file://{alpha_bare}"),
        ("beta", "dev", f"file://{beta_bare}"),
        ("gamma", "", f"file://{gamma_bare}"),   # no branch recorded: the default one
    ], codeup_count=10)
    m = mount(emu, pai_config(emu, workspaces=["7"]) + codeup_config(emu))
    org = emu.data()["codeup"]["organizations"][0]
    want = repositories_in(m.path, urls)
    assert {"pai/7/alpha", "pai/7/beta", "pai/7/gamma"} <= want
    assert len(want) == 3 + len(org["repositories"])
    # Groups have a url too (a web page), and some are empty: none may be cloned.
    assert org["namespaces"]

    dest = tmp_path / "dest"
    r = run_clone_all(m.path, dest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert clones(dest) == want
    assert r.stdout.count("cloned ") == len(want) and "updated" not in r.stdout
    assert branch_of(dest / "pai/7/beta") == "dev"
    assert branch_of(dest / "pai/7/gamma") == "main"
    for rel in want - {"pai/7/alpha", "pai/7/beta", "pai/7/gamma"}:
        with open(os.path.join(m.path, rel, "branch")) as f:
            assert branch_of(dest / rel) == f.read().strip()
    assert not any(p.name.endswith("partial") for p in dest.rglob("*"))

    # Upstream moves on; the second run updates every clone and fails none.
    (alpha / "NEWS").write_text("news\n")
    git("-C", str(alpha), "add", "NEWS")
    git("-C", str(alpha), "commit", "-qm", "news")
    git("-C", str(alpha), "push", "-q", str(alpha_bare), "main")
    r = run_clone_all(m.path, dest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("updated ") == len(want) and "cloned" not in r.stdout
    assert (dest / "pai/7/alpha/NEWS").read_text() == "news\n"
    assert clones(dest) == want

    # A sub-tree of the mount mirrors its own relative paths.
    sub = tmp_path / "sub"
    r = run_clone_all(os.path.join(m.path, "pai", "7"), sub, jobs=1)
    assert r.returncode == 0, r.stderr
    assert clones(sub) == {"alpha", "beta", "gamma"}


def test_clone_all_reports_failures_and_resumes(tmp_path, emulator, mount):
    _, good = make_repo(tmp_path, "good")
    emu, _ = emulator_with_repos(tmp_path, emulator, [
        ("good", "main", f"file://{good}"),
        ("broken", "main", f"file://{tmp_path}/repos/missing.git"),
        ("nobranch", "no-such-branch", f"file://{good}"),
    ], codeup_count=0)
    m = mount(emu, pai_config(emu, workspaces=["7"]))
    dest = tmp_path / "dest"
    for _ in range(2):
        r = run_clone_all(os.path.join(m.path, "pai"), dest)
        assert r.returncode == 1
        assert "clone-all.sh: 2 failed:" in r.stderr
        assert "7/broken: git clone" in r.stderr and "7/nobranch: git clone" in r.stderr
        assert clones(dest) == {"7/good"}
        assert not (dest / "7/broken").exists() and not (dest / "7/broken.clone-all-partial").exists()
    # The missing repository appears: the next run clones it and succeeds... but for the
    # branch that still does not exist.
    git("clone", "-q", "--bare", str(good), str(tmp_path / "repos/missing.git"))
    r = run_clone_all(os.path.join(m.path, "pai"), dest)
    assert r.returncode == 1 and "clone-all.sh: 1 failed:" in r.stderr
    assert clones(dest) == {"7/good", "7/broken"}


@pytest.mark.parametrize("args", [[], ["-j", "0", "a", "b"], ["-j", "x", "a", "b"],
                                  ["/nonexistent", "/tmp/x"]])
def test_clone_all_usage_errors(args):
    r = subprocess.run(["sh", CLONE_ALL, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr


def test_contrib_files_are_well_formed():
    unit = open(os.path.join(ROOT, "contrib", "codesrcfs.service")).read()
    for line in ("ExecStart=/usr/bin/codesrcfs -f %h/src", "ExecStop=fusermount3 -u %h/src",
                 "Restart=on-failure", "[Install]", "WantedBy=default.target"):
        assert line in unit.splitlines()
    fstab = [ln.split() for ln in open(os.path.join(ROOT, "contrib", "fstab.example"))
             if ln.strip() and not ln.startswith("#")]
    assert fstab and all(len(f) == 6 and f[2] == "fuse.codesrcfs" for f in fstab)
    for script in ("clone-all.sh", "mount.codesrcfs"):
        r = subprocess.run(["sh", "-n", os.path.join(ROOT, "contrib", script)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr


def fuse_requests(m):
    """FUSE requests the daemon served so far, by opcode (libfuse's -o debug trace)."""
    return collections.Counter(re.findall(r"opcode: (\w+)", m.log()))


def test_clone_all_reads_one_index_per_directory(tmp_path, emulator, mount):
    """The repositories come from each directory's .index.jsonl, not from walking every
    directory for its url and branch files: only the mount's root is read as a directory
    (a walk with find reads every one, more than a hundred requests here). A code source
    without a url is skipped."""
    _, alpha = make_repo(tmp_path, "alpha")
    emu, urls = emulator_with_repos(tmp_path, emulator, [
        ("alpha", "main", f"file://{alpha}"),
        ("nourl", "main", ""),
    ], codeup_count=40)
    m = mount(emu, pai_config(emu, workspaces=["7"]) + codeup_config(emu), opts=["debug"])
    before = fuse_requests(m)
    dest = tmp_path / "dest"
    r = run_clone_all(m.path, dest)
    assert r.returncode == 0, r.stdout + r.stderr
    walked = fuse_requests(m) - before
    want = repositories_in(m.path, urls)
    assert len(want) == 41 and clones(dest) == want
    assert not os.path.exists(os.path.join(m.path, "pai", "7", "nourl", "url"))
    assert walked["READDIRPLUS"] + walked["READDIR"] <= 2, walked


def test_clone_all_completes_what_the_listing_lacked(tmp_path, emulator, mount):
    """A Codeup list without clone URLs and branches: the index marks those repositories
    incomplete and clone-all reads their files, so each is cloned on its default branch."""
    emu, urls = emulator_with_repos(tmp_path, emulator, [], codeup_count=12)
    emu.configure(codeup_list_full=False)
    m = mount(emu, codeup_config(emu))
    org = os.path.join(m.path, "codeup", "org-1")
    emu.reset_stats()
    dest = tmp_path / "dest"
    r = run_clone_all(org, dest)
    assert r.returncode == 0, r.stdout + r.stderr
    repos = emu.data()["codeup"]["organizations"][0]["repositories"]
    assert emu.stats()["codeup.GetRepository"] == len(repos)
    want = repositories_in(org, urls)
    assert len(want) == 12 and clones(dest) == want
    for rel in want:
        with open(os.path.join(org, rel, "branch")) as f:
            assert branch_of(dest / rel) == f.read().strip()
