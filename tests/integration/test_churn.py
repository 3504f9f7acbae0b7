"""A directory read while the cloud, the TTLs and SIGHUP move the listing under it
(docs/design.md §3): every entry that exists throughout a read is returned once, and one
read costs at most one listing."""
import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest

from test_pai import expected_names, pai_config, pai_workspaces

N = 5000
PAGES = N // 100  # the emulator's largest PAI page


def ws_mount(emulator, mount, n, *opts):
    emu = emulator("--generate-pai", str(n))
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=list(opts))
    return emu, m, ws, os.path.join(m.path, "pai", ws)


@pytest.mark.parametrize("ttl", ["1", "0"])
def test_a_read_spanning_refreshes_returns_every_entry_once(emulator, mount, ttl):
    """The reader stops after 1,000 entries; 100 of the oldest entries go and 100 new
    ones come; the listing expires twice before it finishes. Entries that stood before
    and after must all be returned, none twice."""
    emu, m, ws, wsdir = ws_mount(emulator, mount, N, f"dir_ttl={ttl}")
    before = set(os.listdir(wsdir))
    assert len(before) == N
    time.sleep(2.2)
    got = []
    with os.scandir(wsdir) as it:
        for _ in range(1000):
            got.append(next(it).name)
        emu.configure(mutate={"provider": "pai", "workspace": ws, "add": 100, "remove": 100,
                              "after_requests": 0})
        time.sleep(2.2)
        got += [e.name for e in it]
    after = set(os.listdir(wsdir))
    assert len(after) == N and after != before
    assert len(got) == len(set(got)), "a name returned twice"
    missing = (before & after) - set(got)
    assert not missing, f"{len(missing)} entries present throughout were not returned"


@pytest.mark.parametrize("cmd", ["ls -f {d}", "ls {d}", "find {d} -maxdepth 1"])
def test_one_read_costs_one_listing_at_dir_ttl_0(emulator, mount, cmd):
    """dir_ttl=0 trusts no listing, but a reader that began a read keeps the listing it
    began with: one read, one listing (the first page asked for once), cold or warm."""
    emu, m, ws, wsdir = ws_mount(emulator, mount, N, "dir_ttl=0")
    for _ in range(2):
        emu.reset_stats()
        out = subprocess.run(cmd.format(d=wsdir).split(), capture_output=True, check=True,
                             timeout=120)
        assert len(out.stdout.splitlines()) >= N
        assert emu.stats().get("pai.ListCodeSources", 0) == PAGES


CHURN_S = 20        # how long the readers read
CHURN_N = 2000      # entries of the workspace
STEP_S = 1.5        # between two moves of the cloud or SIGHUPs
W_S = 2.5           # a listing a reader begins on is at most this old (dir_ttl=1, fetch)


def sources_of(emu, ws):
    return next(w for w in pai_workspaces(emu) if w["WorkspaceId"] == ws)["code_sources"]


def read_paced(wsdir, rng):
    """One read of the directory, pausing now and then so that it spans refreshes."""
    names = []
    with os.scandir(os.fsencode(wsdir)) as it:
        for i, e in enumerate(it):
            names.append(e.name)
            if i % 200 == 199:
                time.sleep(rng.uniform(0, 0.3))
    return names


def read_entry(wsdir, name):
    """(id, meta.json's CodeSourceId, url) of one entry, each through the same directory
    inode; None when the entry went meanwhile."""
    try:
        fd = os.open(os.path.join(os.fsencode(wsdir), name), os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        ident = os.getxattr(fd, "user.codesrcfs.id").decode()
        with open(os.open("meta.json", os.O_RDONLY, dir_fd=fd), "rb") as f:
            meta = json.loads(f.read())
        with open(os.open("url", os.O_RDONLY, dir_fd=fd), "rb") as f:
            url = f.read()
    finally:
        os.close(fd)
    return ident, meta["CodeSourceId"], url


@pytest.mark.timeout_s(240)
def test_churn_readers_lose_nothing_and_see_nothing_twice(emulator, mount):
    """Readers list a workspace again and again for CHURN_S seconds while the cloud drops
    its oldest entries and adds new ones, listings expire each second, SIGHUP drops every
    cache and the cloud answers 5xx and throttles. Each read returns each name once and
    every entry that stood throughout it (by id); an entry's id, meta.json and url agree.
    Each change moves the total, which a listing paged across it sees (it is fetched
    again); one that keeps the total between two page requests is a gap of the pager's
    own (docs/reliability.md)."""
    emu = emulator("--generate-pai", str(CHURN_N), "--seed", "11")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]),
              opts=["dir_ttl=1", "attr_ttl=1", "retries=8", "timeout=5"])
    wsdir = os.path.join(m.path, "pai", ws)
    assert len(os.listdir(wsdir)) == CHURN_N
    emu.configure(fail_5xx=0.05, throttle=0.03, retry_after=0)
    versions = [(time.monotonic(), sources_of(emu, ws))]  # (from when, its entries)
    reads, entries, failures = [], [], []
    stop = threading.Event()

    def reader(k):
        rng = random.Random(k)
        try:
            while not stop.is_set():
                start = time.monotonic()
                names = read_paced(wsdir, rng)
                reads.append((start - W_S, time.monotonic(), names))
                for name in rng.sample(names, 3):
                    got = read_entry(wsdir, name)
                    if got:
                        entries.append(got)
        except Exception as e:  # reported below, with the others
            failures.append(f"reader {k}: {e!r}")

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    deadline, step = time.monotonic() + CHURN_S, 0
    while time.monotonic() < deadline and not failures:
        time.sleep(STEP_S)
        step += 1
        if step % 3 == 0:
            m.proc.send_signal(signal.SIGHUP)
            continue
        before = time.monotonic()
        add, remove = (10, 7) if step % 2 else (7, 10)
        emu.configure(mutate={"provider": "pai", "workspace": ws, "add": add, "remove": remove,
                              "after_requests": 0})
        versions.append((before, sources_of(emu, ws)))
    stop.set()
    for th in threads:
        th.join(timeout=60)
    assert not failures, failures
    assert len(versions) > 5 and len(reads) > 10, (len(versions), len(reads))

    names = [expected_names(v) for _, v in versions]
    repo = {cs["CodeSourceId"]: cs["CodeRepo"] for _, v in versions for cs in v}
    for since, until, got in reads:
        assert len(got) == len(set(got)), "a name returned twice in one read"
        # The versions of the cloud the read may have met, and what stood in all of them.
        met = [k for k, (t, _) in enumerate(versions)
               if t <= until and (k + 1 == len(versions) or versions[k + 1][0] >= since)]
        throughout = set.intersection(*(set(names[k]) for k in met))
        lost = [i for i in throughout if not any(names[k][i] in got for k in met)]
        assert not lost, f"{len(lost)} entries that stood throughout a read were not returned"
    assert entries
    for ident, meta_id, url in entries:
        assert meta_id == ident and url == repo[ident].encode() + b"\n", (ident, meta_id, url)
    assert "kept changing while it was paged" not in m.log()
