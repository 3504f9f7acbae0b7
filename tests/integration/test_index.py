""".index.jsonl (docs/design.md §1) through a real mount of the emulator: what each directory
that lists children says of them in one read, what that costs, how it stays hidden from
readdir, and that it follows a refresh. Also the names a directory serves itself."""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from names_rules import GROUP_FILES, INDEX
from test_pai import pai_config
from test_volc_codeup import codeup_config, volc_config

OWN_FILES = set(f.encode() for f in GROUP_FILES)


def read_index(d):
    """(bytes, [entry]) of d's index, read as Python reads a file."""
    with open(os.path.join(d, INDEX), "rb") as f:
        raw = f.read()
    assert raw.endswith(b"\n") or raw == b""
    return raw, [json.loads(line.decode("utf-8", "surrogatepass")) for line in raw.splitlines()]


def fsname(entry):
    return entry["name"].encode("utf-8", "surrogatepass")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def children(d, own_files=()):
    """d's entries as readdir gives them, without the files d serves itself."""
    return [n for n in os.listdir(os.fsencode(d)) if n not in own_files]


def assert_agrees_with_files(d, entries, own_files=()):
    """The index says what the per-child files say, in readdir's order."""
    assert [fsname(e) for e in entries] == children(d, own_files)
    for e in entries:
        p = os.path.join(os.fsencode(d), fsname(e))
        for key in ("url", "branch"):
            f = os.path.join(p, key.encode())
            if os.path.exists(f):
                assert read(f) == e[key].encode() + b"\n", (e["name"], key)
            else:
                assert key not in e, (e["name"], key)
        m = os.path.join(p, b"meta.json")
        if os.path.exists(m):
            assert json.loads(read(m)) == e["meta"], e["name"]
        else:
            assert "meta" not in e
        assert os.getxattr(p, "user.codesrcfs.id").decode() == e["id"]


def pai_source(ident, name, url, branch="main", token="", created="2024-01-01T00:00:00Z"):
    return {"CodeSourceId": ident, "DisplayName": name, "CodeRepo": url, "CodeBranch": branch,
            "CodeRepoAccessToken": token, "WorkspaceId": "7", "GmtCreateTime": created,
            "GmtModifyTime": created}


def pai_data(tmp_path, sources):
    data = tmp_path / "pai.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": "7", "WorkspaceName": "w", "code_sources": sources}]}}))
    return str(data)


@pytest.fixture
def pai_250(emulator, mount):
    emu = emulator("--generate-pai", "250")
    m = mount(emu, pai_config(emu, workspaces=["1001"]))
    emu.reset_stats()
    return emu, m, os.path.join(m.path, "pai", "1001")


def test_pai_index_is_the_listing_for_one_listing(pai_250):
    """Cold: the listing's pages and nothing else; the per-child files agree; warm: free."""
    emu, m, ws = pai_250
    raw, entries = read_index(ws)
    s = emu.stats()
    assert s["pai.ListCodeSources"] == 3 and s["total"] == 3  # 250 at 100 a page
    assert len(entries) == 250 and os.stat(os.path.join(ws, INDEX)).st_size == len(raw)
    assert all(e["kind"] == "code_source" for e in entries)
    assert_agrees_with_files(ws, entries)
    assert any("branch" not in e for e in entries) and any("branch" in e for e in entries)
    assert emu.stats()["total"] == 3  # readdir and every file came from the same listing
    assert read_index(ws) == (raw, entries)
    assert emu.stats()["total"] == 3


def test_shell_tools_read_all_of_it(pai_250):
    emu, m, ws = pai_250
    path = os.path.join(ws, INDEX)
    raw, entries = read_index(ws)
    emu.reset_stats()

    def run(*cmd):
        return subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout

    assert run("cat", path) == raw
    assert int(run("wc", "-l", path).split()[0]) == 250
    urls = [e["url"] for e in entries if "url" in e]
    assert run("jq", "-r", "select(.url) | .url", path).decode().splitlines() == urls
    assert len(run("jq", "-c", ".", path).splitlines()) == 250  # every line is JSON
    with open(path, encoding="utf-8", errors="surrogatepass") as f:
        assert f.read().encode("utf-8", "surrogatepass") == raw
    assert emu.stats().get("total", 0) == 0


def test_readdir_never_shows_it(pai_250):
    emu, m, ws = pai_250
    assert os.path.isfile(os.path.join(ws, INDEX))
    st = os.stat(os.path.join(ws, INDEX))
    assert oct(st.st_mode & 0o777) == "0o444" and st.st_uid == os.getuid()
    assert INDEX not in os.listdir(ws)
    ls = subprocess.run(["ls", "-a", ws], capture_output=True, text=True, check=True).stdout
    assert INDEX not in ls.split("\n")
    for args in ([ws, "-maxdepth", "1"], [m.path]):
        found = subprocess.run(["find", *args], capture_output=True, check=True).stdout
        assert INDEX.encode() not in found
    assert not glob.glob(os.path.join(ws, ".*")) and not glob.glob(os.path.join(m.path, "*", ".*"))
    bash = subprocess.run(["bash", "-O", "dotglob", "-c", f"printf '%s\\n' {ws}/*"],
                          capture_output=True, check=True).stdout
    assert INDEX.encode() not in bash and len(bash.splitlines()) == 250
    grep = subprocess.run(["grep", "-rl", "code-1001-000000", m.path], capture_output=True).stdout
    assert INDEX.encode() not in grep
    assert not os.path.exists(os.path.join(m.path, INDEX))  # the root lists no children
    assert not os.path.exists(os.path.join(ws, "dup", INDEX))  # nor does a code source


def test_unusable_url_no_branch_and_a_taken_name(tmp_path, emulator, mount):
    """A code source without a url file has no url key, one without a branch no branch key,
    and one called .index.jsonl gets its id appended, in the index as in the tree."""
    emu = emulator("--data", pai_data(tmp_path, [
        pai_source("c1", "ok", "https://git.example/ok.git"),
        pai_source("c2", "nobranch", "https://git.example/nb.git", branch=""),
        pai_source("c3", "empty-url", ""),
        pai_source("c4", "option-url", "-uoops"),
        pai_source("c5", INDEX, "https://git.example/idx.git"),
    ]))
    m = mount(emu, pai_config(emu, workspaces=["7"]))
    ws = os.path.join(m.path, "pai", "7")
    _, entries = read_index(ws)
    by = {e["id"]: e for e in entries}
    assert set(by["c1"]) == {"name", "kind", "id", "url", "branch", "meta"}
    assert "branch" not in by["c2"] and by["c2"]["url"] == "https://git.example/nb.git"
    for c in ("c3", "c4"):
        assert "url" not in by[c] and by[c]["meta"]["CodeRepo"] in ("", "-uoops")
    assert by["c5"]["name"] == f"{INDEX}~c5"
    assert read(os.path.join(ws, f"{INDEX}~c5", "url")) == b"https://git.example/idx.git\n"
    assert_agrees_with_files(ws, entries)


def test_meta_is_redacted_alike(tmp_path, emulator, mount):
    secret = "ghp_SecretToken123"
    path = pai_data(tmp_path, [pai_source("c1", "a", "https://git.example/a.git", token=secret),
                               pai_source("c2", "b", "https://user:pw123@git.example/b.git")])
    emu = emulator("--data", path)
    m = mount(emu, pai_config(emu, workspaces=["7"]))
    ws = os.path.join(m.path, "pai", "7")
    raw, entries = read_index(ws)
    assert secret.encode() not in raw and b"pw123" not in raw
    assert entries[0]["meta"]["CodeRepoAccessToken"] == "******"
    assert entries[1]["url"] == "https://user@git.example/b.git"
    assert entries[1]["meta"]["CodeRepo"] == "https://user:******@git.example/b.git"
    assert_agrees_with_files(ws, entries)
    shown = mount(emu, pai_config(emu, workspaces=["7"]), opts=["show_secrets"])
    raw, entries = read_index(os.path.join(shown.path, "pai", "7"))
    assert entries[0]["meta"]["CodeRepoAccessToken"] == secret
    assert entries[1]["url"] == "https://user:pw123@git.example/b.git"


def test_volc_and_provider_level_indexes(emulator, mount):
    emu = emulator("--generate-pai", "5", "--generate-volc", "40")
    m = mount(emu, pai_config(emu) + volc_config(emu))
    emu.reset_stats()
    pai = os.path.join(m.path, "pai")
    raw, entries = read_index(pai)
    # The directories; the names beside them are links, not in the index.
    assert [e["name"] for e in entries] == [n for n in os.listdir(pai)
                                            if not os.path.islink(os.path.join(pai, n))]
    assert any(os.path.islink(os.path.join(pai, n)) for n in os.listdir(pai))
    assert all(e["kind"] == "workspace" and e["id"] == e["name"] for e in entries)
    assert all(set(e) == {"name", "kind", "id"} for e in entries)  # no files of their own
    assert emu.stats()["total"] == 1  # ListWorkspaces
    volc = os.path.join(m.path, "volc")
    _, entries = read_index(volc)
    assert [e["name"] for e in entries] == [n for n in os.listdir(volc)
                                            if not os.path.islink(os.path.join(volc, n))]
    ws = os.path.join(volc, entries[0]["name"])
    raw, entries = read_index(ws)
    assert len(entries) == 40 and all("branch" not in e for e in entries)
    assert b"volc-secret" not in raw  # the generator's secrets
    assert any(e["meta"]["Configuration"]["Git"].get("UserToken") == "******" for e in entries)
    assert_agrees_with_files(ws, entries)


def requests_of(stats):
    """The requests of emulator stats: whether a mount's check left its connection open for
    the next listing is not what these tests count."""
    return {k: v for k, v in stats.items() if not k.startswith("conn.")}


def test_codeup_organization_and_group_indexes(emulator, mount):
    """The index of an organization and of each group costs their listing and agrees with
    the files: the same requests as a mount that lists the directory instead."""
    emu = emulator("--generate-codeup", "150")
    m = mount(emu, codeup_config(emu))
    emu.reset_stats()
    org = os.path.join(m.path, "codeup", "org-1")
    _, entries = read_index(org)
    cost = requests_of(emu.stats())
    assert "codeup.GetRepository" not in cost
    other = mount(emu, codeup_config(emu))
    emu.reset_stats()
    os.listdir(os.path.join(other.path, "codeup", "org-1"))
    listing = requests_of(emu.stats())
    # What listing it costs, no request per child. Codeup fetches repository pages ahead
    # of need and shares them between directories, so which of two racing fetches asks a
    # page may differ by one page of a list call between two listings.
    assert cost.keys() == listing.keys()
    assert all(abs(cost[k] - listing[k]) <= 1 for k in cost if k != "total"), (cost, listing)
    _, top = read_index(os.path.join(m.path, "codeup"))
    assert [(e["name"], e["kind"], e["id"]) for e in top] == [("org-1", "organization", "org-1")]
    kinds = {e["kind"] for e in entries}
    assert kinds == {"group", "repository"}
    assert_agrees_with_files(org, entries)
    groups = [e for e in entries if e["kind"] == "group"]
    for g in groups:
        assert g["url"] == g["meta"]["webUrl"] and "branch" not in g
        d = os.path.join(org, g["name"])
        _, inner = read_index(d)
        assert inner and {e["kind"] for e in inner} <= {"group", "repository"}
        assert_agrees_with_files(d, inner, OWN_FILES)
    assert "codeup.GetRepository" not in emu.stats()


def codeup_group_data():
    """org-1 with group 'g' holding repositories called like the files a group serves and
    like the index, and one of that name at the organization's top, where no file is."""
    group = {"id": 1001, "name": "g", "path": "g", "fullPath": "org-1/g", "kind": "group",
             "nameWithNamespace": "org-1/g", "pathWithNamespace": "org-1/g", "parentId": 1,
             "visibility": "private", "webUrl": "https://codeup.example/org-1/g",
             "avatarUrl": ""}

    def repo(i, path, ns=1001):
        full = f"org-1/g/{path}" if ns == 1001 else f"org-1/{path}"
        t = f"2024-01-01T00:00:{i:02d}Z"
        return {"id": 5000 + i, "name": path, "path": path, "pathWithNamespace": full,
                "nameWithNamespace": full, "namespaceId": ns, "visibility": "private",
                "webUrl": f"https://codeup.example/{full}",
                "httpUrlToRepo": f"https://codeup.example/{full}.git",
                "defaultBranch": "main", "createdAt": t, "updatedAt": t, "lastActivityAt": t,
                "archived": False}

    repos = [repo(i, p) for i, p in enumerate(["url", "branch", "meta.json", INDEX, "plain"])]
    repos += [repo(10, "branch", ns=1), repo(11, INDEX, ns=1)]
    return {"codeup": {"organizations": [{"id": "org-1", "namespaces": [group],
                                          "repositories": repos}]}}


def test_names_a_directory_serves_are_taken(tmp_path, emulator, mount):
    """docs/design.md §1: .index.jsonl everywhere; meta.json, url and branch in a Codeup
    group (though a group has no branch file). The index and readdir agree."""
    path = tmp_path / "codeup.json"
    path.write_text(json.dumps(codeup_group_data()))
    emu = emulator("--data", str(path))
    m = mount(emu, codeup_config(emu))
    g = os.path.join(m.path, "codeup", "org-1", "g")
    _, entries = read_index(g)
    want = [b"url~5000", b"branch~5001", b"meta.json~5002", f"{INDEX}~5003".encode(), b"plain"]
    assert sorted(fsname(e) for e in entries) == sorted(want)
    assert sorted(os.listdir(os.fsencode(g))) == sorted(want + [b"meta.json", b"url"])
    assert read(os.path.join(g, "branch~5001", "url")).endswith(b"/org-1/g/branch.git\n")
    assert_agrees_with_files(g, entries, OWN_FILES)
    org = os.path.join(m.path, "codeup", "org-1")
    _, top = read_index(org)
    assert sorted(e["name"] for e in top) == sorted(["branch", "g", f"{INDEX}~5011"])


def test_codeup_incomplete_records_cost_nothing(emulator, mount):
    """A list without clone URLs or branches: the index says so instead of asking for each
    repository; one read of a url completes that one, which the index then shows."""
    emu = emulator("--generate-codeup", "30")
    emu.configure(codeup_list_full=False)
    m = mount(emu, codeup_config(emu), opts=["attr_ttl=1"])
    org = os.path.join(m.path, "codeup", "org-1")
    emu.reset_stats()
    _, entries = read_index(org)
    assert "codeup.GetRepository" not in emu.stats()
    repos = [e for e in entries if e["kind"] == "repository"]
    assert repos and all(e["incomplete"] is True and "url" not in e and "branch" not in e
                         for e in repos)
    assert all("incomplete" not in e for e in entries if e["kind"] == "group")
    first = repos[0]
    url = read(os.path.join(org, first["name"], "url")).decode().strip()
    assert emu.stats()["codeup.GetRepository"] == 1
    time.sleep(1.2)  # attr_ttl: the kernel asks for the index again
    _, now = read_index(org)
    done = next(e for e in now if e["id"] == first["id"])
    assert done["url"] == url and "incomplete" not in done and done["branch"]
    assert done["meta"]["httpUrlToRepo"] == url
    assert emu.stats()["codeup.GetRepository"] == 1
    assert sum(1 for e in now if e.get("incomplete")) == len(repos) - 1


def test_a_refresh_updates_size_and_content(emulator, mount):
    emu = emulator("--generate-pai", "30")
    m = mount(emu, pai_config(emu, workspaces=["1001"]), opts=["dir_ttl=1", "attr_ttl=1"])
    ws = os.path.join(m.path, "pai", "1001")
    raw, before = read_index(ws)
    emu.configure(mutate={"provider": "pai", "workspace": "1001", "add": 3, "remove": 1,
                          "after_requests": 0})
    time.sleep(2.5)
    now_raw, now = read_index(ws)
    assert len(now) == 32 and now_raw != raw
    assert os.stat(os.path.join(ws, INDEX)).st_size == len(now_raw)
    assert subprocess.run(["cat", os.path.join(ws, INDEX)], capture_output=True,
                          check=True).stdout == now_raw
    assert_agrees_with_files(ws, now)


def test_sighup_updates_it(emulator, mount):
    emu = emulator("--generate-pai", "30")
    m = mount(emu, pai_config(emu, workspaces=["1001"]),
              opts=["dir_ttl=3600", "attr_ttl=3600", "neg_ttl=3600"])
    ws = os.path.join(m.path, "pai", "1001")
    path = os.path.join(ws, INDEX)
    raw, _ = read_index(ws)
    assert subprocess.run(["cat", path], capture_output=True, check=True).stdout == raw
    emu.configure(mutate={"provider": "pai", "workspace": "1001", "add": 1, "remove": 0,
                          "after_requests": 0})
    time.sleep(0.2)
    assert read_index(ws)[0] == raw  # kept: the TTLs are an hour
    m.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while read_index(ws)[0] == raw and time.monotonic() < deadline:
        time.sleep(0.05)
    now_raw, now = read_index(ws)
    assert len(now) == 31 and os.stat(path).st_size == len(now_raw)
    assert subprocess.run(["cat", path], capture_output=True, check=True).stdout == now_raw
    assert_agrees_with_files(ws, now)
