"""One mount of every provider under valgrind (make check-valgrind): list and read a
generated tree, unmount, and fail on any memory error or definite leak. Skipped unless
CODESRCFS_VALGRIND=1, which only that target sets, because valgrind makes it slow; the
normal suite leaves this file out (--ignore) rather than counting a skip."""
import os
import signal
import time

import pytest

from conftest import WRAPPER

pytestmark = pytest.mark.skipif(os.environ.get("CODESRCFS_VALGRIND") != "1",
                                reason="only under make check-valgrind")


def config(emu):
    return (f"[pai]\naccess_key_id = testak\naccess_key_secret = testsecret\n"
            f"endpoint = {emu.url}\n\n"
            f"[volc]\naccess_key = volcak\nsecret_key = volcsecret\nendpoint = {emu.url}\n\n"
            f"[codeup]\ntoken = pt-testtoken\nendpoint = {emu.url}\norganizations = org-1\n")


def test_tree_walk_is_clean_under_valgrind(emulator, mount):
    # A wrapper without valgrind would make this test pass while checking nothing.
    assert WRAPPER and os.path.basename(WRAPPER[0]) == "valgrind", WRAPPER
    emu = emulator("--generate-pai", "40", "--generate-volc", "30", "--generate-codeup", "40")
    m = mount(emu, config(emu))
    files = 0
    for root, dirs, names in os.walk(m.path):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                f.read()
            files += 1
    assert sorted(os.listdir(m.path)) == ["codeup", "pai", "volc"]
    assert files > 100
    # A missing name and a listing again: the negative cache and the cached tree's paths.
    assert not os.path.exists(os.path.join(m.path, "pai", "no-such-workspace"))
    os.listdir(os.path.join(m.path, "pai"))
    # Code sources go in the cloud, SIGHUP, and a walk again: what the kernel is told
    # (expired entries, entries gone) and the nodes it then lets go of.
    ws = os.path.join(m.path, "pai", emu.data()["pai"]["workspaces"][0]["WorkspaceId"])
    before = len(os.listdir(ws))
    emu.configure(mutate={"provider": "pai", "remove": 5, "add": 2, "after_requests": 0})
    m.proc.send_signal(signal.SIGHUP)
    time.sleep(2)
    for root, dirs, names in os.walk(m.path):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                f.read()
    assert len(os.listdir(ws)) == before - 5 + 2

    rc = m.unmount()
    log = m.log()
    assert "ERROR SUMMARY: 0 errors" in log, log[-4000:]
    assert rc == 0, log[-4000:]
