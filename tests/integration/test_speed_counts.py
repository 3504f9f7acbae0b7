"""Request counts of the lazy paths (DESIGN §3): what each operation costs the cloud."""
import os
import subprocess

from test_pai import pai_config, pai_workspaces


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
