"""Names beside ids (docs/design.md §1): each workspace or organization with a display name
also appears as a symbolic link <name> -> <id>, mounted for real against the emulator."""
import json
import os
import signal
import subprocess
import time

import pytest

from names_rules import assign
from test_pai import pai_config
from test_speed_counts import eventually
from test_volc_codeup import codeup_config, volc_config

T0 = 1700000000


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pai_ws(ident, name, age):
    """A PAI workspace created age minutes after T0, with one code source."""
    return {"WorkspaceId": ident, "WorkspaceName": name, "DisplayName": name,
            "GmtCreateTime": iso(T0 + 60 * age),
            "code_sources": [{"CodeSourceId": f"cs-{ident}", "DisplayName": f"src-{ident}",
                              "CodeRepo": f"https://git.example.com/{ident}.git",
                              "GmtCreateTime": iso(T0)}]}


def volc_ws(ident, name):
    return {"Id": ident, "Name": name, "CreateTime": iso(T0), "resources": []}


def codeup_org(ident, name):
    return {"id": ident, "name": name, "createdAt": iso(T0), "namespaces": [],
            "repositories": []}


def data_emulator(emulator, tmp_path, data):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return emulator("--data", str(path))


def links_of(d):
    """{link name: target} of directory d."""
    return {e: os.readlink(os.path.join(d, e)) for e in os.listdir(d)
            if os.path.islink(os.path.join(d, e))}


def dirs_of(d):
    return sorted(e for e in os.listdir(d) if not os.path.islink(os.path.join(d, e)))


def test_ls_l_reads_as_a_table_of_names_and_ids(emulator, mount):
    emu = emulator("--generate-pai", "20", "--generate-volc", "5", "--generate-codeup", "10")
    m = mount(emu, pai_config(emu) + volc_config(emu) +
              f"[codeup]\ntoken = pt-testtoken\nendpoint = {emu.url}\n")
    data = emu.data()
    want = {"pai": {w["WorkspaceName"]: w["WorkspaceId"] for w in data["pai"]["workspaces"]},
            "volc": {w["Name"]: w["Id"] for w in data["volc"]["workspaces"]},
            "codeup": {o["name"]: o["id"] for o in data["codeup"]["organizations"]}}
    assert want == {"pai": {"ws1001": "1001", "ws1002": "1002"}, "volc": {"demo": "ws-0001"},
                    "codeup": {"demo-org": "org-1"}}
    for prov, table in want.items():
        out = subprocess.run(["ls", "-l", os.path.join(m.path, prov)], capture_output=True,
                             text=True, check=True, timeout=60, env={"LC_ALL": "C"}).stdout
        rows = [line.split()[-3:] for line in out.splitlines() if line.startswith("l")]
        assert {name: target for name, arrow, target in rows if arrow == "->"} == table
        assert all(line.startswith("lrwxrwxrwx") for line in out.splitlines()
                   if "->" in line)
        assert dirs_of(os.path.join(m.path, prov)) == sorted(table.values())
        for name, ident in table.items():
            st = os.lstat(os.path.join(m.path, prov, name))
            assert st.st_size == len(ident)


def test_cd_by_name_readlink_and_find_follow_the_links(emulator, mount):
    emu = emulator("--generate-pai", "30")
    m = mount(emu, pai_config(emu))
    pai = os.path.join(m.path, "pai")
    assert os.readlink(os.path.join(pai, "ws1002")) == "1002"
    r = subprocess.run("cd ws1002 && pwd -P && ls", shell=True, cwd=pai, capture_output=True,
                       text=True, check=True, timeout=60)
    lines = r.stdout.split("\n")
    assert lines[0] == os.path.join(pai, "1002")
    assert sorted(filter(None, lines[1:])) == sorted(os.listdir(os.path.join(pai, "1002")))
    sources = sum(len(w["code_sources"]) for w in emu.data()["pai"]["workspaces"])
    plain = subprocess.run(["find", pai, "-name", "url"], capture_output=True, text=True,
                           check=True, timeout=60)
    follow = subprocess.run(["find", "-L", pai, "-name", "url"], capture_output=True,
                            text=True, timeout=60)
    assert follow.returncode == 0 and follow.stderr == ""
    assert len(plain.stdout.splitlines()) == sources  # each once, by id
    assert len(follow.stdout.splitlines()) == 2 * sources  # and once more by name
    assert sum(line.startswith(os.path.join(pai, "ws1001") + "/")
               for line in follow.stdout.splitlines()) == \
        len(emu.data()["pai"]["workspaces"][0]["code_sources"])


def test_a_link_carries_its_targets_extended_attributes(emulator, mount):
    emu = emulator("--generate-pai", "3", "--generate-codeup", "3")
    m = mount(emu, pai_config(emu) + f"[codeup]\ntoken = pt-testtoken\nendpoint = {emu.url}\n")
    for prov, name, ident in (("pai", "ws1001", b"1001"), ("codeup", "demo-org", b"org-1")):
        link = os.path.join(m.path, prov, name)
        target = os.path.join(m.path, prov, ident.decode())
        assert os.getxattr(link, "user.codesrcfs.id") == ident
        assert os.getxattr(link, "user.codesrcfs.provider") == prov.encode()
        # Linux lets no one read a user.* attribute of a symbolic link itself, but lists
        # them: those of the link are its target's.
        assert os.listxattr(link, follow_symlinks=False) == os.listxattr(target)
        assert "user.codesrcfs.id" in os.listxattr(target)


@pytest.mark.parametrize("how", ["dir_ttl", "sighup"])
def test_a_renamed_workspaces_link_follows(emulator, mount, how):
    """The kernel held the old name (attr_ttl an hour): after the refresh it is gone at
    once, and the new name leads to the same directory."""
    emu = emulator("--generate-pai", "10")
    ttl = "dir_ttl=1" if how == "dir_ttl" else "dir_ttl=3600"
    m = mount(emu, pai_config(emu), opts=[ttl, "attr_ttl=3600", "neg_ttl=3600"])
    pai = os.path.join(m.path, "pai")
    old, new = os.path.join(pai, "ws1001"), os.path.join(pai, "renamed")
    listing = sorted(os.listdir(old))
    assert not os.path.lexists(new)  # a miss the kernel remembers
    emu.rename("pai", "1001", "renamed")
    if how == "dir_ttl":
        time.sleep(1.5)
        assert "renamed" in os.listdir(pai)
    else:
        m.proc.send_signal(signal.SIGHUP)
    assert eventually(lambda: os.path.lexists(new))
    assert eventually(lambda: not os.path.lexists(old))
    assert "ws1001" not in os.listdir(pai)
    assert os.readlink(new) == "1001"
    assert sorted(os.listdir(new)) == listing
    assert links_of(pai) == {"renamed": "1001", "ws1002": "1002"}


def test_collisions_get_the_id_appended(emulator, mount, tmp_path):
    """Two workspaces of one name: the older keeps it. A name equal to an id, or to a name
    the directory serves itself: the id directory (or the file) keeps it."""
    wss = [pai_ws("1001", "team", 1), pai_ws("1002", "team", 2), pai_ws("1003", "1001", 3),
           pai_ws("1004", "a/b", 4), pai_ws("1005", "", 5), pai_ws("1006", ".index.jsonl", 6),
           pai_ws("1007", "team~1002", 7)]
    emu = data_emulator(emulator, tmp_path, {"pai": {"workspaces": wss}})
    m = mount(emu, pai_config(emu))
    pai = os.path.join(m.path, "pai")
    assert dirs_of(pai) == [w["WorkspaceId"] for w in wss]
    served = os.path.isfile(os.path.join(pai, ".index.jsonl"))  # a name pai/ serves itself
    want = {"team": "1001", "team~1002": "1002", "1001~1003": "1003", "a_b": "1004",
            ".index.jsonl~1006" if served else ".index.jsonl": "1006",
            "team~1002~1007": "1007"}
    assert links_of(pai) == want
    ids = [w["WorkspaceId"] for w in wss]
    reserved = tuple(ids) + ((".index.jsonl",) if served else ())
    rules = assign([(w["WorkspaceName"].encode(), w["WorkspaceId"], T0 + 60 * k)
                    for k, w in enumerate(wss, 1) if w["WorkspaceName"]], reserved)
    assert {n.decode(): i for i, n in rules.items()} == want
    with open(os.path.join(pai, "team~1002", "src-1002", "url")) as f:
        assert f.read() == "https://git.example.com/1002.git\n"


def test_configured_ids_get_their_names_in_one_request(emulator, mount, tmp_path):
    data = {"pai": {"workspaces": [pai_ws("1001", "one", 1), pai_ws("1002", "two", 2),
                                   pai_ws("1003", "three", 3)]},
            "volc": {"workspaces": [volc_ws("ws-a", "alpha"), volc_ws("ws-b", "beta"),
                                    volc_ws("ws-c", "gamma")]},
            "codeup": {"organizations": [codeup_org("org-1", "first"),
                                         codeup_org("org-2", "second")]}}
    emu = data_emulator(emulator, tmp_path, data)
    config = (pai_config(emu, workspaces=["1001", "1003"]) +
              volc_config(emu, workspaces=["ws-c", "ws-a"]) + codeup_config(emu, orgs=("org-2",)))
    want = {"pai": {"one": "1001", "three": "1003"}, "volc": {"alpha": "ws-a", "gamma": "ws-c"},
            "codeup": {"second": "org-2"}}

    def counts():
        s = emu.stats()
        return (s.get("pai.ListWorkspaces"), s.get("volc.ListWorkspaces"),
                s.get("codeup.ListOrganizations"), s.get("total"))

    # The check at mount confirms the ids with that call, and its answer names them.
    m = mount(emu, config)
    assert counts() == (1, 1, 1, 3)
    assert {p: links_of(os.path.join(m.path, p)) for p in want} == want
    assert counts() == (1, 1, 1, 3)
    assert os.listdir(os.path.join(m.path, "codeup", "second")) == []  # the org is listed
    # Without the check, the first listing asks; past dir_ttl, a refresh asks again.
    emu.reset_stats()
    m = mount(emu, config, opts=["delay_connect", "dir_ttl=1"])
    assert counts() == (None, None, None, None)
    assert {p: links_of(os.path.join(m.path, p)) for p in want} == want
    assert counts() == (1, 1, 1, 3)
    emu.rename("pai", "1003", "drei")
    time.sleep(1.5)
    assert links_of(os.path.join(m.path, "pai")) == {"one": "1001", "drei": "1003"}
    assert emu.stats()["pai.ListWorkspaces"] == 2


def test_a_failed_name_fetch_hides_no_id(emulator, mount):
    emu = emulator("--generate-pai", "5")
    m = mount(emu, pai_config(emu, workspaces=["1002", "1001"]),
              opts=["retries=0", "dir_ttl=1", "delay_connect"])
    emu.configure(fail_5xx=1.0)
    pai = os.path.join(m.path, "pai")
    assert sorted(os.listdir(pai)) == ["1001", "1002"]
    assert emu.stats()["fault.5xx"] >= 1
    emu.configure(fail_5xx=0.0)
    time.sleep(1.5)
    assert links_of(pai) == {"ws1001": "1001", "ws1002": "1002"}


@pytest.mark.parametrize("n,headers,pages", [(150, True, 2), (150, False, 2), (100, True, 1),
                                             (100, False, 2), (30, False, 1)])
def test_codeup_lists_every_organization_joined(emulator, mount, tmp_path, n, headers, pages):
    """No organizations configured: ListOrganizations, paged by its headers (x-total: no
    page asked past the last) or, without them, until a short page (a full last page needs
    the empty one after it; and the tree fetches ahead without a total, at most one page
    too many at this size: docs/architecture.md, Listings)."""
    orgs = [codeup_org(f"org-{i:03d}", f"team-{i:03d}") for i in range(n)]
    orgs[7]["repositories"] = [{
        "id": 77, "name": "api", "path": "api", "pathWithNamespace": "org-007/api",
        "namespaceId": 1, "httpUrlToRepo": "https://git.example.com/api.git",
        "defaultBranch": "main", "createdAt": iso(T0)}]
    emu = data_emulator(emulator, tmp_path, {"codeup": {"organizations": orgs}})
    emu.configure(codeup_headers=headers)
    m = mount(emu, f"[codeup]\ntoken = pt-testtoken\nendpoint = {emu.url}\n")
    emu.reset_stats()
    codeup = os.path.join(m.path, "codeup")
    assert dirs_of(codeup) == [o["id"] for o in orgs]
    assert links_of(codeup) == {o["name"]: o["id"] for o in orgs}
    asked = emu.stats()["codeup.ListOrganizations"]
    assert asked == pages if headers or pages == 1 else pages <= asked <= pages + 1
    with open(os.path.join(codeup, "team-007", "api", "url")) as f:
        assert f.read() == "https://git.example.com/api.git\n"


def test_configured_organizations_still_work(emulator, mount):
    """Past the check at mount (delay_connect: it would refuse the organization not
    joined), an id ListOrganizations does not answer still has its directory."""
    emu = emulator("--generate-codeup", "30")
    m = mount(emu, codeup_config(emu, orgs=("org-1", "not-joined")), opts=["delay_connect"])
    codeup = os.path.join(m.path, "codeup")
    assert dirs_of(codeup) == ["not-joined", "org-1"]
    assert links_of(codeup) == {"demo-org": "org-1"}
    assert sorted(os.listdir(os.path.join(codeup, "demo-org"))) == \
        sorted(os.listdir(os.path.join(codeup, "org-1")))
