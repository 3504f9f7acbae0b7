"""codesrcfs --refresh PATH (docs/design.md §2): the daemon serving PATH lists that one
directory again now, whatever dir_ttl, and prints what changed; the kernel's copies go
with it, so the next ls shows the new state; other mounts are left alone."""
import json
import os

import pytest

PAI_WS = "1234"
SOURCES = [("cs-1", "alpha", "2021-01-01"), ("cs-2", "beta", "2021-01-02"),
           ("cs-3", "gamma", "2021-01-03"), ("cs-4", "delta", "2021-01-04")]


@pytest.fixture
def emu(emulator, tmp_path):
    sources = [{"CodeSourceId": i, "DisplayName": name, "CodeBranch": "main",
                "CodeRepo": f"https://git.example.com/{name}.git", "WorkspaceId": PAI_WS,
                "GmtCreateTime": f"{day}T00:00:00Z", "GmtModifyTime": f"{day}T00:00:00Z"}
               for i, name, day in SOURCES]
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": PAI_WS, "WorkspaceName": "team", "code_sources": sources}]}}))
    return emulator("--data", str(data))


def config(emu):
    return {"pai": {"access_key_id": "testak", "access_key_secret": "testsecret",
                    "workspaces": PAI_WS}}


def change(emu, **what):
    """Add, remove and change entries of the workspace, at once."""
    emu.configure(mutate={"provider": "pai", "workspace": PAI_WS, "after_requests": 0, **what})


def url_of(emu, name):
    (ws,) = emu.data()["pai"]["workspaces"]
    return next(c["CodeRepo"] for c in ws["code_sources"] if c["DisplayName"] == name)


def test_refresh_prints_the_changes_and_ls_sees_them_at_once(emu, mount, run_codesrcfs):
    m = mount(emu, config(emu), opts=["dir_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", PAI_WS)
    assert sorted(os.listdir(wsdir)) == ["alpha", "beta", "delta", "gamma"]
    for name in os.listdir(wsdir):  # the kernel keeps the entries and the files' pages
        with open(os.path.join(wsdir, name, "url")) as f:
            assert f.read() == f"https://git.example.com/{name}.git\n"
    emu.reset_stats()
    change(emu, add=1, remove=1, change=1)  # alpha goes, beta's url moves, new-1-0 comes
    r = run_codesrcfs(["--refresh", wsdir])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["- alpha", "~ beta", "+ new-1-0"]
    assert sorted(os.listdir(wsdir)) == ["beta", "delta", "gamma", "new-1-0"]
    assert not os.path.exists(os.path.join(wsdir, "alpha"))
    with open(os.path.join(wsdir, "beta", "url")) as f:
        assert f.read() == url_of(emu, "beta") + "\n" != "https://git.example.com/beta.git\n"
    assert emu.stats()["pai.ListCodeSources"] == 1  # the refresh; ls asked nothing more
    r = run_codesrcfs(["--refresh", wsdir])
    assert (r.returncode, r.stdout) == (0, "")  # nothing changed since


def test_refresh_of_what_is_no_codesrcfs_directory_fails_with_one_line(emu, mount, tmp_path,
                                                                        run_codesrcfs):
    m = mount(emu, config(emu))
    wsdir = os.path.join(m.path, "pai", PAI_WS)
    cases = [(str(tmp_path), "is not on a codesrcfs mount"),
             (os.path.join(wsdir, "alpha"), "is not a directory that lists children"),
             (os.path.join(wsdir, "alpha", "url"), "is not a directory that lists children"),
             (str(tmp_path / "missing"), "No such file or directory")]
    for path, words in cases:
        r = run_codesrcfs(["--refresh", path])
        assert r.returncode != 0 and r.stdout == "", (path, r)
        assert r.stderr.count("\n") == 1 and words in r.stderr and path in r.stderr, r.stderr
    r = run_codesrcfs(["--refresh"])
    assert r.returncode != 0 and "usage" in r.stderr


def test_another_mount_is_not_refreshed(emu, mount, run_codesrcfs):
    one, other = (mount(emu, config(emu), opts=["dir_ttl=3600"]) for _ in range(2))
    dirs = [os.path.join(m.path, "pai", PAI_WS) for m in (one, other)]
    before = [sorted(os.listdir(d)) for d in dirs]
    emu.reset_stats()
    change(emu, add=1)
    r = run_codesrcfs(["--refresh", dirs[0]])
    assert (r.returncode, r.stdout) == (0, "+ new-1-0\n"), r.stderr
    assert sorted(os.listdir(dirs[0])) == sorted(before[0] + ["new-1-0"])
    assert sorted(os.listdir(dirs[1])) == before[1]
    assert emu.stats()["pai.ListCodeSources"] == 1


def test_getxattr_asking_the_size_first_lists_once(emu, mount):
    """getxattr(2) callers ask for the size first, or try a small buffer and come back
    after ERANGE (Python: 128 bytes, then 64 KiB): one refresh, one listing."""
    m = mount(emu, config(emu), opts=["dir_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", PAI_WS)
    os.listdir(wsdir)
    emu.reset_stats()
    change(emu, add=20)
    value = os.getxattr(wsdir, "user.codesrcfs.refresh").decode()
    assert len(value) > 128
    assert sorted(value.splitlines()) == sorted(f"+ new-1-{k}" for k in range(20))
    assert emu.stats()["pai.ListCodeSources"] == 1
    assert "user.codesrcfs.refresh" not in os.listxattr(wsdir)


def test_a_refresh_that_fails_says_so_and_keeps_the_listing(emu, mount, run_codesrcfs):
    m = mount(emu, config(emu), opts=["dir_ttl=3600", "timeout=1", "retries=0"])
    wsdir = os.path.join(m.path, "pai", PAI_WS)
    before = sorted(os.listdir(wsdir))
    change(emu, add=1)
    emu.configure(fail_5xx=1.0)
    r = run_codesrcfs(["--refresh", wsdir])
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr == f"codesrcfs: cannot refresh {wsdir}: Input/output error\n"
    assert sorted(os.listdir(wsdir)) == before
    emu.configure(fail_5xx=0.0)
    r = run_codesrcfs(["--refresh", wsdir])
    assert (r.returncode, r.stdout) == (0, "+ new-1-0\n")


def test_changes_past_what_the_kernel_passes_end_with_a_count(emu, mount, run_codesrcfs):
    """A getxattr value is at most 64 KiB: the lines that fit, then how many more."""
    m = mount(emu, config(emu), opts=["dir_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", PAI_WS)
    os.listdir(wsdir)
    change(emu, add=6000)
    r = run_codesrcfs(["--refresh", wsdir], timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(r.stdout) <= 65536 and lines[-1].startswith("... and ")
    shown, more = lines[:-1], int(lines[-1].split()[2])
    assert all(ln.startswith("+ new-1-") for ln in shown)
    assert len(shown) + more == 6000
    assert len(os.listdir(wsdir)) == 4 + 6000
