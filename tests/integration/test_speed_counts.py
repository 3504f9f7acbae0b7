"""Request counts of the lazy paths (docs/design.md §3): what each operation costs the cloud, and
what warm re-reads cost the daemon (the kernel's caches answer them)."""
import collections
import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

from test_pai import pai_config, pai_workspaces
from test_volc_codeup import codeup_config


def fresh_mount(emulator, mount, n, *opts):
    emu = emulator("--generate-pai", str(n))
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=list(opts))
    emu.reset_stats()
    return emu, m, os.path.join(m.path, "pai", ws)


def test_first_entry_costs_one_page(emulator, mount):
    emu, m, wsdir = fresh_mount(emulator, mount, 1000)
    with os.scandir(wsdir) as it:
        next(it)
    assert emu.stats()["pai.ListCodeSources"] == 1


def test_cold_listing_costs_exactly_the_page_count(emulator, mount):
    emu, m, wsdir = fresh_mount(emulator, mount, 1000)
    assert len(os.listdir(wsdir)) == 1000
    assert emu.stats()["pai.ListCodeSources"] == 10


def test_warm_rereads_cost_nothing(emulator, mount):
    emu, m, wsdir = fresh_mount(emulator, mount, 300)
    subprocess.run(["ls", "-lR", wsdir], check=True, capture_output=True, timeout=60)
    subprocess.run(f"cat {wsdir}/*/url >/dev/null", shell=True, check=True, timeout=60)
    emu.reset_stats()
    for _ in range(2):
        subprocess.run(["ls", "-l", wsdir], check=True, capture_output=True, timeout=60)
        subprocess.run(f"cat {wsdir}/*/url >/dev/null", shell=True, check=True, timeout=60)
        subprocess.run(["grep", "-rq", "nothing-matches-this", wsdir], timeout=60)
        subprocess.run(["find", wsdir], check=True, capture_output=True, timeout=60)
    assert emu.stats().get("total", 0) == 0


def test_a_page_is_shared_between_first_entry_and_listing(emulator, mount):
    emu, m, wsdir = fresh_mount(emulator, mount, 250)
    with os.scandir(wsdir) as it:
        next(it)
    names = os.listdir(wsdir)
    assert len(names) == 250 and len(set(names)) == 250
    assert emu.stats()["pai.ListCodeSources"] == 3


WARM_ROUND = ["ls -lR {d}", "cat {d}/*/url", "grep -rq nothing-matches-this {d}", "find {d}"]


def fuse_requests(m):
    """FUSE requests the daemon served so far, by opcode (libfuse's -o debug trace)."""
    return collections.Counter(re.findall(r"opcode: (\w+)", m.log()))


def test_warm_rereads_stay_in_the_kernel(emulator, mount):
    """Within the TTLs the kernel answers a warm round itself: no look-up, attribute, open,
    read or listing request reaches the daemon (it keeps directories in no-opendir mode and
    files in no-open mode)."""
    emu, m, wsdir = fresh_mount(emulator, mount, 300, "debug")
    for cmd in WARM_ROUND:
        subprocess.run(cmd.format(d=wsdir), shell=True, capture_output=True, timeout=60)
    before = fuse_requests(m)
    for cmd in WARM_ROUND:
        subprocess.run(cmd.format(d=wsdir), shell=True, capture_output=True, timeout=60)
    warm = fuse_requests(m) - before
    for op in ("LOOKUP", "GETATTR", "READ", "READDIR", "READDIRPLUS", "OPEN", "OPENDIR",
               "RELEASEDIR", "LISTXATTR"):
        assert warm[op] == 0, (op, warm)
    # ls asks for security.selinux and the ACL once, learns "not supported", stops asking.
    assert warm["GETXATTR"] <= 3, warm


def test_refresh_shows_through_the_kernel_caches(emulator, mount):
    """After dir_ttl (and attr_ttl) a changed listing is what ls, find and a look-up see:
    the kernel's copies of the directory and of its entries are not served past them."""
    emu = emulator("--generate-pai", "30")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=["dir_ttl=1", "attr_ttl=1"])
    wsdir = os.path.join(m.path, "pai", ws)
    for cmd in WARM_ROUND:
        subprocess.run(cmd.format(d=wsdir), shell=True, capture_output=True, timeout=60)
    old = set(os.listdir(wsdir))
    emu.configure(mutate={"provider": "pai", "workspace": ws, "add": 1, "remove": 1,
                          "after_requests": 0})
    time.sleep(2.5)
    now = set(os.listdir(wsdir))
    added, removed = now - old, old - now
    assert len(added) == 1 and len(removed) == 1, (added, removed)
    found = subprocess.run(["find", wsdir, "-name", "url"], capture_output=True, text=True,
                           timeout=60).stdout
    assert f"/{next(iter(added))}/url" in found
    assert f"/{next(iter(removed))}/" not in found
    with open(os.path.join(wsdir, next(iter(added)), "url")) as f:
        assert f.read().startswith("https://")
    assert not os.path.exists(os.path.join(wsdir, next(iter(removed))))


def test_a_listing_is_not_kept_past_dir_ttl_by_the_attribute_timeout(emulator, mount):
    """dir_ttl shorter than attr_ttl: a directory's attributes, by which the kernel checks
    its copy of the listing, last no longer than the listing, so the change shows."""
    emu = emulator("--generate-pai", "30")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=["dir_ttl=1", "attr_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", ws)
    old = set(os.listdir(wsdir))
    assert set(os.listdir(wsdir)) == old
    emu.configure(mutate={"provider": "pai", "workspace": ws, "add": 1, "after_requests": 0})
    time.sleep(1.5)
    assert len(set(os.listdir(wsdir)) - old) == 1


def test_files_of_a_listed_directory_are_read_without_a_request(emulator, mount):
    """Once the kernel listed a code source directory, the daemon pushes its files' bytes
    into the kernel's page cache: their first read makes no request, and reads true. The
    kernel keeps nearly every pushed page (a page or two in a few hundred, at random, is
    read again the usual way: not understood yet), hence the bound."""
    emu, m, wsdir = fresh_mount(emulator, mount, 200, "debug")
    subprocess.run(["ls", "-lR", wsdir], check=True, capture_output=True, timeout=60)
    time.sleep(2)  # the pushes run on a thread of their own
    before = fuse_requests(m)
    urls = subprocess.run(f"cat {wsdir}/*/url", shell=True, check=True, capture_output=True,
                          text=True, timeout=60).stdout.split()
    subprocess.run(f"cat {wsdir}/*/meta.json >/dev/null", shell=True, check=True, timeout=60)
    reads = (fuse_requests(m) - before)["READ"]
    assert reads <= 0.05 * 2 * len(urls), reads  # the daemon served at most 5% of them
    want = [cs["CodeRepo"] for cs in pai_workspaces(emu)[0]["code_sources"]]
    assert sorted(urls) == sorted(want)


def ids_by_dir(wsdir):
    """{code source id: its directory's name}, read from the xattrs."""
    return {os.getxattr(os.path.join(wsdir, d), "user.codesrcfs.id").decode(): d
            for d in os.listdir(wsdir)}


def removed_ids(emu, ws, before):
    now = {cs["CodeSourceId"] for w in emu.data()["pai"]["workspaces"]
           if w["WorkspaceId"] == ws for cs in w["code_sources"]}
    return set(before) - now


def test_a_refresh_takes_removed_entries_out_of_the_kernel(emulator, mount):
    """attr_ttl far longer than dir_ttl: once a refresh finds a code source gone, neither
    its directory nor its files answer any more, though the kernel had them."""
    emu = emulator("--generate-pai", "30")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=["dir_ttl=1", "attr_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", ws)
    before = ids_by_dir(wsdir)
    subprocess.run(f"cat {wsdir}/*/url >/dev/null", shell=True, check=True, timeout=60)
    emu.configure(mutate={"provider": "pai", "workspace": ws, "remove": 12,
                          "after_requests": 0})
    gone = removed_ids(emu, ws, before)
    assert len(gone) == 12
    assert all(os.path.exists(os.path.join(wsdir, before[i], "url")) for i in gone)
    time.sleep(1.5)
    now = ids_by_dir(wsdir)  # the refresh
    assert not gone & set(now)
    assert_gone(wsdir, before, gone, now.values())


def eventually(check, timeout=10):
    """Wait for check() to hold: the kernel is told from a thread of the daemon's own."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def assert_gone(wsdir, before, gone, names_now):
    """No path leads to the code sources of ids gone any more ({id: name} before)."""
    for i in gone:
        path = os.path.join(wsdir, before[i])
        if before[i] in names_now:  # the name passed to another of the same name
            assert eventually(lambda: os.getxattr(path, "user.codesrcfs.id").decode() != i)
        else:
            assert eventually(lambda: not os.path.exists(path)), path
            assert not os.path.exists(os.path.join(path, "url")), path
    assert {before[i] for i in gone} - set(names_now), "no name really went"


def test_sighup_drops_the_kernels_entries(emulator, mount):
    """Every TTL an hour: after SIGHUP a code source removed in the cloud is gone and one
    added is found, with no listing read in between, though the kernel had the first and
    remembered the second as missing."""
    emu = emulator("--generate-pai", "30")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]),
              opts=["dir_ttl=3600", "attr_ttl=3600", "neg_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", ws)
    before = ids_by_dir(wsdir)
    subprocess.run(f"cat {wsdir}/*/url >/dev/null", shell=True, check=True, timeout=60)
    new = os.path.join(wsdir, "new-1-0")  # the name the emulator's first mutation adds
    assert not os.path.exists(new)
    emu.configure(mutate={"provider": "pai", "workspace": ws, "add": 1, "remove": 12,
                          "after_requests": 0})
    assert any(cs["DisplayName"] == "new-1-0" for w in emu.data()["pai"]["workspaces"]
               for cs in w["code_sources"])
    gone = removed_ids(emu, ws, before)
    assert all(os.path.exists(os.path.join(wsdir, before[i], "url")) for i in gone)
    m.proc.send_signal(signal.SIGHUP)
    assert eventually(lambda: os.path.exists(os.path.join(new, "url")))
    names_now = {cs["DisplayName"] for w in emu.data()["pai"]["workspaces"]
                 if w["WorkspaceId"] == ws for cs in w["code_sources"]}
    assert_gone(wsdir, before, gone, names_now)


# ---- Codeup: a directory's page k is its groups on page k of ListNamespaces and its
# repositories among page k of the organization's repositories, which every directory of
# the organization shares.


def codeup_mount(emulator, mount, tmp_path, headers=True, data=None):
    if data is None:
        emu = emulator("--generate-codeup", "250")
    else:
        path = tmp_path / "codeup.json"
        path.write_text(json.dumps(data))
        emu = emulator("--data", str(path))
    emu.configure(codeup_headers=headers)
    m = mount(emu, codeup_config(emu))
    emu.reset_stats()
    return emu, m, os.path.join(m.path, "codeup", "org-1")


@pytest.mark.parametrize("headers", [True, False])
def test_codeup_first_entry_costs_one_page_of_each_list(emulator, mount, tmp_path, headers):
    emu, m, org = codeup_mount(emulator, mount, tmp_path, headers)
    with os.scandir(org) as it:
        next(it)
    s = emu.stats()
    assert (s["codeup.ListNamespaces"], s["codeup.ListRepositories"]) == (1, 1)


@pytest.mark.parametrize("headers", [True, False])
def test_codeup_walk_asks_each_repository_page_once(emulator, mount, tmp_path, headers):
    """Every group takes its repositories from the organization's pages fetched for the
    first listing, and asks for one page of its sub-groups: the later pages of its listing
    know that its groups ended."""
    emu, m, org = codeup_mount(emulator, mount, tmp_path, headers)
    groups = len(emu.data()["codeup"]["organizations"][0]["namespaces"])
    for _ in os.walk(org):
        pass
    s = emu.stats()
    assert s["codeup.ListRepositories"] == 3  # 250 repositories at 100 a page
    assert s["codeup.ListNamespaces"] == groups + 1  # the organization and each group


def late_group_data():
    """org-1 with groups 'early', holding the 150 oldest repositories, and 'late', holding
    the 60 newest: none of late's is on the organization's first page of 100."""
    def group(gid, path):
        return {"id": gid, "name": path, "path": path, "fullPath": f"org-1/{path}",
                "kind": "group", "nameWithNamespace": f"org-1/{path}",
                "pathWithNamespace": f"org-1/{path}", "parentId": 1, "visibility": "private",
                "webUrl": f"https://codeup.example/org-1/{path}", "avatarUrl": ""}

    def repo(i, gid, group_path):
        full = f"org-1/{group_path}/{group_path}-{i}"
        t = datetime.fromtimestamp(1700000000 + i * 60, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        return {"id": 5000 + i, "name": f"{group_path}-{i}", "path": f"{group_path}-{i}",
                "pathWithNamespace": full, "nameWithNamespace": full, "namespaceId": gid,
                "visibility": "private", "webUrl": f"https://codeup.example/{full}",
                "httpUrlToRepo": f"https://codeup.example/{full}.git",
                "defaultBranch": "master", "createdAt": t, "updatedAt": t,
                "lastActivityAt": t, "archived": False}

    repos = [repo(i, 1001, "early") for i in range(150)]
    repos += [repo(i, 1002, "late") for i in range(150, 210)]
    return {"codeup": {"organizations": [{"id": "org-1",
                                          "namespaces": [group(1001, "early"),
                                                         group(1002, "late")],
                                          "repositories": repos}]}}


@pytest.mark.parametrize("headers", [True, False])
def test_codeup_group_whose_repositories_come_late(emulator, mount, tmp_path, headers):
    """The first page of 'late' holds none of its entries yet is not its last: the listing
    goes on to the pages that hold them, and asks for each page once."""
    emu, m, org = codeup_mount(emulator, mount, tmp_path, headers, late_group_data())
    late = os.path.join(org, "late")
    assert os.path.isdir(late)  # found with the name filter, not by listing org-1
    emu.reset_stats()
    files = ["meta.json", "url"]  # a group's own
    assert sorted(os.listdir(late)) == sorted(files + [f"late-{i}" for i in range(150, 210)])
    s = emu.stats()
    assert (s["codeup.ListNamespaces"], s["codeup.ListRepositories"]) == (1, 3)
    assert sorted(os.listdir(os.path.join(org, "early"))) == \
        sorted(files + [f"early-{i}" for i in range(150)])
    assert sorted(os.listdir(org)) == ["early", "late"]
    assert emu.stats()["codeup.ListRepositories"] == 3  # the pages are shared


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_cold_listing_keeps_parallel_requests_in_flight_and_no_more(emulator, mount, parallel):
    """The pager's threads outnumber its requests (one parses an answer while another's
    request is on the wire), so the bound is the request slots: at 50 ms a request, nine
    pages after the first keep exactly `parallel` of them at the server at once."""
    emu, m, wsdir = fresh_mount(emulator, mount, 1000, f"parallel={parallel}")
    emu.configure(latency_ms=50)
    assert len(os.listdir(wsdir)) == 1000
    stats = emu.stats()
    assert stats["pai.ListCodeSources"] == 10
    assert stats["in_flight.max"] == parallel


@pytest.mark.timeout_s(120)
def test_a_cold_ls_gets_the_pages_that_came_while_the_last_is_held(emulator, mount):
    """The pages of a cold listing reach the reader as they come, not after the last one
    (docs/design.md §3): page 10 of 10 held, the reader gets more than the first page; then
    the whole listing once, every name as the listing names it, and no page asked twice."""
    import threading
    from test_pai import expected_names

    emu, m, wsdir = fresh_mount(emulator, mount, 1000)
    emu.configure(stall_page=10, stall_s=60)
    got, done = [], threading.Event()

    def reader():
        with os.scandir(os.fsencode(wsdir)) as it:
            for e in it:
                got.append(e.name)
        done.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    while emu.stats().get("fault.stall_page", 0) < 1 or len(got) <= 100:
        assert not done.is_set(), "the listing ended while its last page was held"
        time.sleep(0.02)
    assert emu.stats().get("fault.stall_page", 0) == 1 and not done.is_set()
    emu.configure(stall_page=0)
    th.join(timeout=60)
    assert done.is_set()
    ws = pai_workspaces(emu)[0]
    assert sorted(got) == sorted(expected_names(ws["code_sources"]).values())
    assert emu.stats()["pai.ListCodeSources"] == 10
