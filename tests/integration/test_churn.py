"""A directory read while the cloud, the TTLs and SIGHUP move the listing under it
(docs/design.md §3): every entry that exists throughout a read is returned once, and one
read costs at most one listing."""
import os
import subprocess
import time

import pytest

from test_pai import pai_config, pai_workspaces

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
