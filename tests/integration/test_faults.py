"""The fault matrix: every way the emulator can misbehave, through a real mount."""
import errno
import os
import time

import pytest

from test_pai import expected_names, pai_config, pai_workspaces

TIMEOUT, RETRIES = 2, 1
BOUND = TIMEOUT * (RETRIES + 1) + 5 * RETRIES + 5  # DESIGN §3, plus slack for the machine


@pytest.mark.parametrize("knob", [{"reset": 1.0}, {"truncate": 1.0}, {"malformed": 1.0},
                                  {"stall": 1.0, "stall_s": 30}, {"down": True},
                                  {"fail_5xx": 1.0}])
def test_nothing_cached_fails_with_eio_within_the_bound(emulator, mount, knob):
    emu = emulator("--generate-pai", "20")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]),
              opts=[f"timeout={TIMEOUT}", f"retries={RETRIES}"])
    emu.configure(**knob)
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(m.path, "pai", ws))
    assert e.value.errno == errno.EIO
    assert time.monotonic() - start < BOUND
    emu.configure(reset=0.0, truncate=0.0, malformed=0.0, stall=0.0, down=False, fail_5xx=0.0)


@pytest.mark.parametrize("knob", [{"reset": 1.0}, {"malformed": 1.0}, {"down": True}])
def test_stale_listing_is_served_and_logged_once(emulator, mount, knob):
    emu = emulator("--generate-pai", "20")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]),
              opts=["dir_ttl=1", f"timeout={TIMEOUT}", f"retries={RETRIES}"])
    wsdir = os.path.join(m.path, "pai", ws)
    before = sorted(os.listdir(wsdir))
    emu.configure(**knob)
    for _ in range(3):
        time.sleep(1.1)
        assert sorted(os.listdir(wsdir)) == before
    assert m.log().count("serving the last listing") == 1


def test_entries_moving_while_paged_cause_no_duplicate_and_no_loss(emulator, mount):
    emu = emulator("--generate-pai", "450")
    ws = pai_workspaces(emu)[0]
    before = {c["CodeSourceId"] for c in ws["code_sources"]}
    m = mount(emu, pai_config(emu, workspaces=[ws["WorkspaceId"]]), opts=["parallel=1"])
    emu.configure(mutate={"provider": "pai", "after_requests": 2, "add": 5, "remove": 3})
    listed = os.listdir(os.fsencode(os.path.join(m.path, "pai", ws["WorkspaceId"])))
    assert len(listed) == len(set(listed))
    after = pai_workspaces(emu)[0]
    names = expected_names(after["code_sources"])
    throughout = before & {c["CodeSourceId"] for c in after["code_sources"]}
    missing = {names[i] for i in throughout} - set(listed)
    assert not missing, (missing, sorted(set(listed) - set(names.values()))[:5])


def test_no_secret_in_cmdline_logs_or_tree_with_every_fault(emulator, mount):
    emu = emulator("--generate-pai", "60")
    m = mount(emu, pai_config(emu), opts=["debug", "retries=6", "timeout=3"])
    emu.configure(fail_5xx=0.1, throttle=0.1, retry_after=0, reset=0.05, truncate=0.05,
                  malformed=0.05)
    for root, dirs, files in os.walk(m.path):
        for f in files:
            try:
                open(os.path.join(root, f), "rb").read()
            except OSError:
                pass
    secrets = {"testsecret"} | {c["CodeRepoAccessToken"] for w in pai_workspaces(emu)
                                for c in w["code_sources"] if c["CodeRepoAccessToken"]}
    with open(f"/proc/{m.proc.pid}/cmdline", "rb") as f:
        cmdline = f.read()
    log = m.log()
    for s in secrets:
        assert s.encode() not in cmdline and s not in log


def test_hostile_names_stay_inside_their_directory(emulator, mount, tmp_path):
    import json

    names = ["a\u0000b", "x" * 1000, "é" * 600, "../../etc", "..", ".", "", "a/b/../c",
             "tab\there", "cr\rlf\n", "\udc80broken", "~", "dup~7"]
    sources = [{"CodeSourceId": f"{i + 1}", "DisplayName": n, "CodeRepo": f"https://x/{i}.git",
                "WorkspaceId": "9", "GmtCreateTime": f"2024-01-01T00:00:{i:02d}Z"}
               for i, n in enumerate(names)]
    sources.append({"CodeSourceId": "14", "DisplayName": "dup", "CodeRepo": "https://x/d.git",
                    "WorkspaceId": "9", "GmtCreateTime": "2023-01-01T00:00:00Z"})
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": "9", "WorkspaceName": "w", "code_sources": sources}]}}))
    emu = emulator("--data", str(data))
    m = mount(emu, pai_config(emu, workspaces=["9"]))
    wsdir = os.path.join(os.fsencode(m.path), b"pai", b"9")
    listed = os.listdir(wsdir)
    assert len(listed) == len(sources) == len(set(listed))
    for n in listed:
        assert 0 < len(n) <= 255 and b"/" not in n and b"\0" not in n and n not in (b".", b"..")
        with open(os.path.join(wsdir, n, b"url"), "rb") as f:
            assert f.read().startswith(b"https://x/")
    # nothing escaped: the only entries anywhere under the mount are inside pai/9
    assert sorted(os.listdir(m.path)) == ["pai"]
    assert os.listdir(os.path.join(m.path, "pai")) == ["9"]
