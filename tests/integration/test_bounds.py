"""docs/design.md §4: every quantity a server controls has a limit. A hostile emulator
(the hostile_* knobs) through a real mount, the daemon under a memory limit so that a
missing bound fails its test instead of taking the machine's memory."""
import errno
import json
import os
import signal
import subprocess
import time

import pytest

from test_pai import expected_names, pai_config, pai_workspaces
from test_volc_codeup import codeup_config

# The bounds of docs/design.md §4, as the daemon logs them.
MAX_ENTRIES = 1_000_000
MAX_PAGES = 20_000
MAX_LISTING_BYTES = 1 << 30
MAX_BODY = 2 << 20
PARALLEL = 8  # the default
# Pages one fetch of a listing may ask for past the page that ends it: those on the wire
# when it came back, and as many sent while it was read (docs/design.md §4).
AHEAD = 2 * PARALLEL
LIMIT_MB = 2048  # far above what a bounded listing needs, far below the machine
HUGE = 10**9


def hostile_mount(emulator, mount, *args, **knobs):
    """A PAI mount of workspace 1001 (250 real entries) with the hostile knobs set, the
    daemon under LIMIT_MB; the directory's path."""
    emu = emulator("--generate-pai", "250", *args)
    m = mount(emu, pai_config(emu, workspaces=["1001"]), limit_mb=LIMIT_MB)
    emu.configure(**knobs)
    emu.reset_stats()
    return emu, m, os.path.join(m.path, "pai", "1001")


def listing_fails_with_eio(m, wsdir, needle):
    with pytest.raises(OSError) as e:
        os.listdir(wsdir)
    assert e.value.errno == errno.EIO
    lines = [line for line in m.log().splitlines() if needle in line]
    assert lines, m.log()[-3000:]
    assert "1001" in lines[0] and "docs/design.md §4" in lines[0], lines[0]
    # The daemon is alive and serves what is within the bounds (the workspace's name
    # beside it, docs/design.md §1, as the hostile knobs let its listing call answer).
    pai = os.path.join(m.path, "pai")
    assert [d for d in os.listdir(pai) if not os.path.islink(os.path.join(pai, d))] == ["1001"]


@pytest.mark.timeout_s(240)
def test_a_huge_total_with_full_pages_stops_at_the_entries_bound(emulator, mount):
    # Pages of 10,000 fresh entries, more than asked for: the entries bound, not the pages
    # bound, ends it, after some 100 requests.
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_total=HUGE,
                                  hostile_records_per_page=10_000)
    listing_fails_with_eio(m, wsdir, f"more than {MAX_ENTRIES} entries")
    assert emu.stats()["pai.ListCodeSources"] <= MAX_ENTRIES // 10_000 + 1 + PARALLEL


def test_a_total_beyond_the_bound_is_not_believed(emulator, mount):
    # A total of 2^63 - 1 overflowed a signed addition and the listing was taken as one
    # page. Not believed, it is paged until its last page.
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_total=2**63 - 1)
    ws = pai_workspaces(emu)[0]
    listed = os.listdir(os.fsencode(wsdir))
    assert sorted(listed) == sorted(expected_names(ws["code_sources"]).values())
    assert "not believed" in m.log()


@pytest.mark.parametrize("total", [HUGE, 500_000])
def test_empty_pages_end_the_listing(emulator, mount, total):
    # Once drew 113,099 requests in 10.5 minutes for one ls. A total within the bound that
    # empty pages contradict is fetched again (three times in all), then served as seen.
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_total=total,
                                  hostile_empty_pages=True)
    assert len(os.listdir(wsdir)) == 100  # page 1
    assert emu.stats()["pai.ListCodeSources"] <= 3 * (1 + AHEAD)


def test_pages_that_bring_no_new_id_end_the_listing(emulator, mount):
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_total=500_000,
                                  hostile_repeat_pages=True)
    assert len(os.listdir(wsdir)) == 100
    assert emu.stats()["pai.ListCodeSources"] <= 3 * (1 + AHEAD)


def test_one_answer_over_max_body_fails(emulator, mount):
    # 400,000 entries in one answer of some 38 MB: json-c's objects for it took gigabytes.
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_records_per_page=400_000)
    listing_fails_with_eio(m, wsdir, f"an answer over {MAX_BODY} bytes")


@pytest.mark.timeout_s(240)
def test_answer_bytes_of_a_listing_are_bounded(emulator, mount):
    # One entry and some 2 MB of padding a page, under max_body: the bytes bound ends it.
    pad = MAX_BODY - 100_000
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_total=HUGE,
                                  hostile_records_per_page=1, hostile_pad_bytes=pad)
    listing_fails_with_eio(m, wsdir, f"more than {MAX_LISTING_BYTES} bytes")
    assert emu.stats()["pai.ListCodeSources"] <= MAX_LISTING_BYTES // pad + 1 + PARALLEL


@pytest.mark.timeout_s(400)
def test_pages_of_a_listing_are_bounded(emulator, mount):
    emu, m, wsdir = hostile_mount(emulator, mount, hostile_total=HUGE,
                                  hostile_records_per_page=1)
    listing_fails_with_eio(m, wsdir, f"more than {MAX_PAGES} pages")
    assert emu.stats()["pai.ListCodeSources"] <= MAX_PAGES + PARALLEL


def test_sigterm_stops_a_listing_between_pages(emulator, mount):
    # 20,000 pages of one entry, 50 ms each, 8 at a time: two minutes of paging that
    # SIGTERM must cut short (docs/design.md §2: "exit promptly").
    emu, m, wsdir = hostile_mount(emulator, mount, "--latency-ms", "50", hostile_total=HUGE,
                                  hostile_records_per_page=1)
    reader = subprocess.Popen(["ls", wsdir], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    while emu.stats().get("pai.ListCodeSources", 0) < 2 * PARALLEL:
        time.sleep(0.1)
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(timeout=20) == 0, m.log()[-2000:]
    assert reader.wait(timeout=20) != 0
    assert emu.stats()["pai.ListCodeSources"] < MAX_PAGES // 10


# ---- Codeup: a group that names itself, or an ancestor, as its child

def codeup_group(gid, path, full, parent):
    return {"id": gid, "name": path, "path": path, "fullPath": full, "kind": "group",
            "parentId": parent, "webUrl": f"https://codeup.example/{full}"}


def codeup_loops(tmp_path):
    """org-1: group top (1) holding self (2), which lists itself, and a (3), which holds
    b (4), which lists a again under a path that looks right; one repository each."""
    groups = [codeup_group(1, "top", "org-1/top", 100),
              codeup_group(2, "self", "org-1/top/self", 1),
              codeup_group(2, "self", "org-1/top/self", 2),
              codeup_group(3, "a", "org-1/top/a", 1),
              codeup_group(4, "b", "org-1/top/a/b", 3),
              codeup_group(3, "a", "org-1/top/a/b/a", 4)]
    repos = [{"id": 500 + g["id"], "name": f"r{g['id']}", "path": f"r{g['id']}",
              "pathWithNamespace": f"{g['fullPath']}/r{g['id']}", "namespaceId": g["id"],
              "httpUrlToRepo": f"https://git.example.com/r{g['id']}.git",
              "defaultBranch": "main", "createdAt": "2024-01-01T00:00:00Z"}
             for g in groups[:2] + groups[3:5]]
    data = tmp_path / "loops.json"
    data.write_text(json.dumps({"codeup": {"organizations": [
        {"id": "org-1", "namespaces": groups, "repositories": repos}]}}))
    return data


def test_codeup_list_calls_are_bounded(emulator, mount):
    # Pages of 10,000 fresh repositories and always a next page: Codeup keeps them as
    # parsed JSON in its organization's memo, whose own bound of 100,000 ends the listing
    # at the organization's page 11; the tree's bound of a million entries would have
    # let it run to page 101. The tree pages ahead, so up to PARALLEL pages past the
    # 11th may already be under way when it fails.
    emu = emulator("--generate-codeup", "20")
    m = mount(emu, codeup_config(emu), limit_mb=LIMIT_MB)
    emu.configure(hostile_records_per_page=10_000)
    emu.reset_stats()
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(m.path, "codeup", "org-1"))
    assert e.value.errno == errno.EIO
    lines = [line for line in m.log().splitlines() if "more than 100000 entries" in line]
    assert lines and "ListRepositories" in lines[0], m.log()[-3000:]
    assert 11 <= emu.stats()["codeup.ListRepositories"] <= 11 + PARALLEL


@pytest.mark.timeout_s(240)
def test_codeup_pages_of_a_list_call_are_bounded(emulator, mount, tmp_path):
    # A directory whose pages hold none of its entries says more follow, whatever they
    # brought; an organization list that never ends is stopped at Codeup's page bound.
    emu = emulator("--data", codeup_loops(tmp_path))
    m = mount(emu, codeup_config(emu), limit_mb=LIMIT_MB)
    top = os.path.join(m.path, "codeup", "org-1", "top")
    assert os.path.isdir(top)
    emu.configure(hostile_records_per_page=1)  # one repository a page, in org-1 itself
    emu.reset_stats()
    with pytest.raises(OSError) as e:
        os.listdir(top)
    assert e.value.errno == errno.EIO
    lines = [line for line in m.log().splitlines() if "more than 1000 pages" in line]
    assert lines and "ListRepositories" in lines[0], m.log()[-3000:]
    # Page 1 may be the memo's, kept when top was looked up; none past page 1000 is asked.
    assert 999 <= emu.stats()["codeup.ListRepositories"] <= 1000


def test_codeup_group_cycles_end(emulator, mount, tmp_path):
    emu = emulator("--data", codeup_loops(tmp_path))
    m = mount(emu, codeup_config(emu), limit_mb=LIMIT_MB)
    org = os.path.join(m.path, "codeup", "org-1")
    dirs = []
    for root, sub, files in os.walk(org):  # bounded by the test's alarm
        dirs.append(os.path.relpath(root, org))
        assert len(dirs) < 100, dirs
    assert sorted(dirs) == [".", "top", "top/a", "top/a/b", "top/a/b/r4", "top/a/r3", "top/r1",
                            "top/self", "top/self/r2"]
    assert sorted(os.listdir(os.path.join(org, "top", "self"))) == ["meta.json", "r2", "url"]
    log = m.log()
    assert "group 2" in log and "group 3" in log, log[-2000:]


# ---- Codeup: groups that nest without end, a new id at every level

MAX_DEPTH = 64  # levels of directories below codeup/: org-1 is level 1


def test_codeup_endless_nesting_ends(emulator, mount):
    # Every group holds one new sub-group (hostile_nest_groups): no cycle to refuse, and
    # `find` over the organization never ended. The directory at level 64 (nest-63) lists
    # its files but no sub-group, and the log says why, once.
    emu = emulator("--generate-codeup", "20")
    m = mount(emu, codeup_config(emu), limit_mb=LIMIT_MB)
    emu.configure(hostile_nest_groups=True)
    emu.reset_stats()
    org = os.path.join(m.path, "codeup", "org-1")
    out = subprocess.run(["find", org, "-type", "d"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    groups = [os.path.relpath(d, org) for d in out.stdout.splitlines()
              if os.path.basename(d).startswith("nest-")]
    chain = "/".join(f"nest-{k}" for k in range(1, MAX_DEPTH))
    assert max(groups, key=len) == chain
    assert len(groups) == MAX_DEPTH - 1
    deepest = os.path.join(org, chain)
    assert sorted(os.listdir(deepest)) == ["meta.json", "url"]
    assert not os.path.exists(os.path.join(deepest, f"nest-{MAX_DEPTH}"))
    with open(os.path.join(deepest, ".index.jsonl")) as f:
        assert f.read() == ""
    # Every directory was listed once or twice (a look-up, then a listing), no more.
    assert emu.stats()["codeup.ListNamespaces"] <= 2 * (MAX_DEPTH + 1)

    subprocess.run(["find", org], capture_output=True, check=True, timeout=120)
    lines = [line for line in m.log().splitlines() if "levels deep" in line]
    assert len(lines) == 1, m.log()[-3000:]
    assert f"org-1/{chain}" in lines[0] and f"is {MAX_DEPTH} levels deep" in lines[0]
    assert "docs/design.md §4" in lines[0] and "left out" in lines[0], lines[0]
    assert m.proc.poll() is None  # alive
