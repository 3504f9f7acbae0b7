"""PAI end to end: codesrcfs mounted for real against the emulator, used as a person would."""
import errno
import json
import os
import subprocess

import pytest

from conftest import is_mount
from names_rules import assign


def pai_config(emu, secret="testsecret", workspaces=None, extra=""):
    lines = [
        "[pai]",
        "access_key_id = testak",
        f"access_key_secret = {secret}",
        f"endpoint = {emu.url}",
    ]
    if workspaces:
        lines.append("workspaces = " + ", ".join(workspaces))
    return "\n".join(lines) + "\n" + extra


def pai_files(emu, tmp_path):
    """A PAI configuration file only its owner can read, and an empty mount point."""
    cfg = tmp_path / "config"
    cfg.write_text(pai_config(emu))
    cfg.chmod(0o600)
    mp = tmp_path / "mnt"
    mp.mkdir()
    return cfg, mp


def pai_workspaces(emu):
    return emu.data()["pai"]["workspaces"]


def expected_names(sources):
    entries = []
    for cs in sources:
        from calendar import timegm
        from time import strptime

        t = cs.get("GmtCreateTime") or ""
        ctime = timegm(strptime(t, "%Y-%m-%dT%H:%M:%SZ")) if t else 0
        entries.append((cs["DisplayName"].encode("utf-8", "surrogatepass"), cs["CodeSourceId"], ctime))
    return assign(entries)


@pytest.fixture
def pai(emulator, mount):
    emu = emulator("--generate-pai", "250")
    m = mount(emu, pai_config(emu))
    return emu, m


def test_root_holds_only_configured_providers(pai):
    emu, m = pai
    assert sorted(os.listdir(m.path)) == ["pai"]


def test_workspaces_are_discovered(pai):
    emu, m = pai
    want = sorted(w["WorkspaceId"] for w in pai_workspaces(emu))
    assert sorted(os.listdir(os.path.join(m.path, "pai"))) == want


def test_every_record_appears_once_with_exact_url_and_branch(pai):
    emu, m = pai
    for ws in pai_workspaces(emu):
        sources = ws["code_sources"]
        names = expected_names(sources)
        wsdir = os.path.join(m.path, "pai", ws["WorkspaceId"])
        listed = sorted(os.fsencode(n) for n in os.listdir(wsdir))
        assert listed == sorted(names.values())
        for cs in sources:
            d = os.path.join(os.fsencode(wsdir), names[cs["CodeSourceId"]])
            with open(os.path.join(d, b"url"), "rb") as f:
                assert f.read() == cs["CodeRepo"].encode() + b"\n"
            branch = os.path.join(d, b"branch")
            if cs.get("CodeBranch"):
                with open(branch, "rb") as f:
                    assert f.read() == cs["CodeBranch"].encode() + b"\n"
            else:
                assert not os.path.exists(branch)
            with open(os.path.join(d, b"meta.json"), "rb") as f:
                raw = f.read()
            assert raw.endswith(b"\n")
            meta = json.loads(raw)
            assert meta["CodeSourceId"] == cs["CodeSourceId"]
            assert meta["DisplayName"] == cs["DisplayName"]


def test_no_secret_anywhere_in_the_tree(pai):
    emu, m = pai
    secrets = set()
    for ws in pai_workspaces(emu):
        for cs in ws["code_sources"]:
            if cs.get("CodeRepoAccessToken"):
                secrets.add(cs["CodeRepoAccessToken"])
    assert secrets, "the generated data must carry secrets for this test to mean anything"
    seen_redacted = 0
    for root, dirs, files in os.walk(m.path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                body = f.read()
            for s in secrets:
                assert s.encode() not in body
            if name == "meta.json":
                meta = json.loads(body)
                if meta.get("CodeRepoAccessToken"):
                    assert meta["CodeRepoAccessToken"] == "******"
                    seen_redacted += 1
    assert seen_redacted > 0
    assert not any(s in m.log() for s in secrets | {"testsecret"})


def test_show_secrets_turns_redaction_off(emulator, mount):
    emu = emulator("--generate-pai", "30")
    m = mount(emu, pai_config(emu), opts=["show_secrets"])
    found = 0
    for ws in pai_workspaces(emu):
        for cs in ws["code_sources"]:
            if cs.get("CodeRepoAccessToken"):
                names = expected_names(ws["code_sources"])
                p = os.path.join(os.fsencode(m.path), b"pai", ws["WorkspaceId"].encode(),
                                 names[cs["CodeSourceId"]], b"meta.json")
                with open(p, "rb") as f:
                    assert json.loads(f.read())["CodeRepoAccessToken"] == cs["CodeRepoAccessToken"]
                found += 1
    assert found


def test_modes_owner_and_times(pai):
    emu, m = pai
    ws = pai_workspaces(emu)[0]
    wsdir = os.path.join(m.path, "pai", ws["WorkspaceId"])
    entry = sorted(os.listdir(wsdir))[0]
    d = os.path.join(wsdir, entry)
    st = os.stat(d)
    assert st.st_mode & 0o7777 == 0o555 and os.path.isdir(d)
    assert st.st_uid == os.getuid()
    f = os.stat(os.path.join(d, "url"))
    assert f.st_mode & 0o7777 == 0o444
    with open(os.path.join(d, "url"), "rb") as fh:
        assert f.st_size == len(fh.read())
    meta = json.load(open(os.path.join(d, "meta.json")))
    from calendar import timegm
    from time import strptime

    assert st.st_mtime == timegm(strptime(meta["GmtModifyTime"], "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.parametrize("action", ["touch", "mkdir", "rm", "write", "mv", "chmod"])
def test_every_change_fails_with_erofs(pai, action):
    emu, m = pai
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    wsdir = os.path.join(m.path, "pai", ws)
    entry = os.path.join(wsdir, sorted(os.listdir(wsdir))[0])
    with pytest.raises(OSError) as e:
        if action == "touch":
            open(os.path.join(entry, "new"), "w").close()
        elif action == "mkdir":
            os.mkdir(os.path.join(wsdir, "newdir"))
        elif action == "rm":
            os.unlink(os.path.join(entry, "url"))
        elif action == "write":
            open(os.path.join(entry, "url"), "w").close()
        elif action == "mv":
            os.rename(os.path.join(entry, "url"), os.path.join(entry, "url2"))
        elif action == "chmod":
            os.chmod(os.path.join(entry, "url"), 0o644)
    assert e.value.errno == errno.EROFS


def test_missing_names_are_enoent(pai):
    emu, m = pai
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    for p in ["nope", f"pai/{ws}/no such thing", "pai/99999999", f"pai/{ws}/x/y/z"]:
        with pytest.raises(FileNotFoundError):
            os.stat(os.path.join(m.path, p))


def test_grep_and_find(pai):
    emu, m = pai
    total = sum(len(w["code_sources"]) for w in pai_workspaces(emu))
    out = subprocess.run(["find", m.path, "-type", "f", "-name", "url", "-print0"], capture_output=True,
                         check=True, timeout=60).stdout
    assert len(out.split(b"\0")) - 1 == total
    r = subprocess.run(["grep", "-rlZ", "--include=meta.json", "CodeSourceId", m.path],
                       capture_output=True, check=True, timeout=60)
    assert len(r.stdout.split(b"\0")) - 1 == total


def test_awkward_names_follow_the_rules(pai):
    emu, m = pai
    listed = set()
    for ws in pai_workspaces(emu):
        listed |= set(os.listdir(os.fsencode(os.path.join(m.path, "pai", ws["WorkspaceId"]))))
    assert all(len(n) <= 255 and b"/" not in n for n in listed)
    assert b"_." in listed or b"_.." in listed or b"_" in listed


def test_lookup_of_a_never_listed_name_costs_one_request(emulator, mount):
    emu = emulator("--generate-pai", "500")
    ws = pai_workspaces(emu)[0]
    m = mount(emu, pai_config(emu, workspaces=[ws["WorkspaceId"]]))
    plain = [cs for cs in ws["code_sources"]
             if cs["DisplayName"].isascii() and cs["DisplayName"].replace("-", "").isalnum()]
    names = expected_names(ws["code_sources"])
    cs = next(c for c in plain if names[c["CodeSourceId"]] == c["DisplayName"].encode())
    emu.reset_stats()
    with open(os.path.join(m.path, "pai", ws["WorkspaceId"], cs["DisplayName"], "url")) as f:
        assert f.read() == cs["CodeRepo"] + "\n"
    assert emu.stats().get("pai.ListCodeSources", 0) <= 2


def test_git_clone_loop(tmp_path, emulator, mount):
    repos = tmp_path / "repos"
    repos.mkdir()
    sources = []
    for i, (name, branch) in enumerate([("alpha", "main"), ("beta", "dev"), ("gamma", "main")]):
        src = tmp_path / "src" / name
        subprocess.run(["git", "init", "-q", "-b", branch, str(src)], check=True)
        (src / "README").write_text(f"{name}\n")
        subprocess.run(["git", "-C", str(src), "add", "README"], check=True)
        subprocess.run(["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-qm", "init"], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(repos / f"{name}.git")],
                       check=True)
        sources.append({"CodeSourceId": f"code-{i}", "DisplayName": name,
                        "CodeRepo": f"file://{repos}/{name}.git", "CodeBranch": branch,
                        "CodeRepoAccessToken": "", "WorkspaceId": "7",
                        "GmtCreateTime": f"2024-01-0{i + 1}T00:00:00Z",
                        "GmtModifyTime": f"2024-01-0{i + 1}T00:00:00Z"})
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": "7", "WorkspaceName": "w", "code_sources": sources}]}}))
    emu = emulator("--data", str(data))
    m = mount(emu, pai_config(emu, workspaces=["7"]))
    clones = tmp_path / "clones"
    script = (f'for d in "{m.path}"/pai/7/*/; do '
              f'git clone -q --branch "$(cat "$d/branch")" "$(cat "$d/url")" '
              f'"{clones}/$(basename "$d")" || exit 1; done')
    subprocess.run(["bash", "-c", script], check=True, timeout=120)
    for name in ("alpha", "beta", "gamma"):
        assert (clones / name / "README").read_text() == f"{name}\n"


def test_wrong_credentials_refuse_the_mount(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "5")
    cfg = tmp_path / "config"
    cfg.write_text(pai_config(emu, secret="wrongsecret"))
    cfg.chmod(0o600)
    mp = tmp_path / "mnt"
    mp.mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(mp)])
    assert r.returncode != 0
    assert "credentials were rejected" in r.stderr
    assert "SignatureDoesNotMatch" in r.stderr
    assert "wrongsecret" not in r.stderr
    assert not os.path.ismount(mp)


def test_wrong_credentials_with_delay_connect_give_eacces(emulator, mount):
    emu = emulator("--generate-pai", "5")
    m = mount(emu, pai_config(emu, secret="wrongsecret"), opts=["delay_connect"])
    with pytest.raises(PermissionError):
        os.listdir(os.path.join(m.path, "pai"))
    assert "SignatureDoesNotMatch" in m.log()
    assert "wrongsecret" not in m.log()


@pytest.mark.parametrize("text,mode,needle", [
    ("[pai]\naccess_key_id = a\naccess_key_secret = b\nendpoint = {url}\n", 0o644,
     "readable by group or others"),
    ("[pai]\naccess_key_id = a\naccess_key_secret = b\nendpoint = {url}\ncolour = red\n", 0o600,
     ":5:"),
    ("[pai]\naccess_key_id = a\naccess_key_secret = b\nendpoint = http://10.1.2.3:80\n", 0o600,
     "http"),
    ("[pai]\naccess_key_id = a\nendpoint = {url}\n", 0o600, "access_key_secret"),
    ("[nosuch]\nx = y\n", 0o600, "nosuch"),
    ("[PAI]\naccess_key_id = a\n", 0o600,
     ":1: unknown section [PAI] (expected pai, volc or codeup)"),
    ("[codeup]\nToken = x\n", 0o600,
     ":2: unknown key 'Token' in [codeup] (expected token, endpoint or organizations)"),
])
def test_bad_config_mounts_nothing(emulator, tmp_path, run_codesrcfs, text, mode, needle):
    emu = emulator("--generate-pai", "5")
    cfg = tmp_path / "config"
    cfg.write_text(text.format(url=emu.url))
    cfg.chmod(mode)
    mp = tmp_path / "mnt"
    mp.mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(mp)])
    assert r.returncode != 0
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not os.path.ismount(mp)
    assert emu.stats().get("total", 0) == 0


@pytest.mark.parametrize("opt", ["dir_ttl=abc", "parallel=0", "retries=-1", "timeout=",
                                 "nosuchoption"])
def test_bad_options_mount_nothing(emulator, tmp_path, run_codesrcfs, opt):
    cfg, mp = pai_files(emulator("--generate-pai", "5"), tmp_path)
    r = run_codesrcfs(["-f", "-o", f"config={cfg},{opt}", str(mp)])
    assert r.returncode != 0
    assert r.stderr.strip()
    assert not os.path.ismount(mp)


def test_help_and_version(run_codesrcfs):
    r = run_codesrcfs(["--help"])
    assert r.returncode == 0 and "dir_ttl" in r.stdout and "delay_connect" in r.stdout
    r = run_codesrcfs(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("codesrcfs ")


def test_sighup_drops_the_cache(emulator, mount):
    import signal
    import time

    emu = emulator("--generate-pai", "20")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=["dir_ttl=3600"])
    wsdir = os.path.join(m.path, "pai", ws)
    os.listdir(wsdir)
    emu.reset_stats()
    os.listdir(wsdir)
    assert emu.stats().get("pai.ListCodeSources", 0) == 0
    m.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    os.listdir(wsdir)
    assert emu.stats().get("pai.ListCodeSources", 0) >= 1


def test_sigterm_unmounts_cleanly(emulator, mount):
    import signal

    emu = emulator("--generate-pai", "5")
    m = mount(emu, pai_config(emu))
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(timeout=10) == 0
    assert not os.path.ismount(m.path)


def test_sigterm_the_moment_the_mount_appears(emulator, mount):
    # Whoever sees the mount may stop the daemon at once: it must not die with the
    # mount left behind as "Transport endpoint is not connected".
    import signal

    emu = emulator("--generate-pai", "5")
    for _ in range(10):
        m = mount(emu, pai_config(emu), wait=False)
        while not is_mount(m.path):  # bounded by the test alarm
            assert m.proc.poll() is None, m.log()
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=10) == 0, m.log()
        assert not is_mount(m.path)


def test_server_pages_shorter_than_asked(emulator, mount):
    emu = emulator("--generate-pai", "205", "--max-page-size", "30")
    ws = pai_workspaces(emu)[0]
    m = mount(emu, pai_config(emu, workspaces=[ws["WorkspaceId"]]))
    emu.reset_stats()
    names = expected_names(ws["code_sources"])
    listed = os.listdir(os.fsencode(os.path.join(m.path, "pai", ws["WorkspaceId"])))
    assert sorted(listed) == sorted(names.values())
    assert emu.stats()["pai.ListCodeSources"] == 7  # ceil(205 / 30)


def test_sts_token_is_sent_and_checked(emulator, mount, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "5", "--pai-sts", "sts-token-value")
    m = mount(emu, pai_config(emu, extra="security_token = sts-token-value\n"))
    assert os.listdir(os.path.join(m.path, "pai"))
    cfg = tmp_path / "nosts"
    cfg.write_text(pai_config(emu))
    cfg.chmod(0o600)
    (tmp_path / "mnt-nosts").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt-nosts")])
    assert r.returncode != 0 and "InvalidSecurityToken" in r.stderr


def test_credentials_from_the_environment(emulator, mount):
    emu = emulator("--generate-pai", "5")
    m = mount(emu, f"[pai]\nendpoint = {emu.url}\n",
              env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "testak",
                   "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "testsecret"})
    assert os.listdir(m.path) == ["pai"]


def test_many_parallel_readers(emulator, mount):
    from concurrent.futures import ThreadPoolExecutor

    emu = emulator("--generate-pai", "300", "--latency-ms", "5")
    ws = pai_workspaces(emu)[0]
    m = mount(emu, pai_config(emu, workspaces=[ws["WorkspaceId"]]), opts=["dir_ttl=1"])
    wsdir = os.path.join(m.path, "pai", ws["WorkspaceId"])
    want = len(ws["code_sources"])

    def reader(k):
        import time

        for _ in range(5):
            names = os.listdir(wsdir)
            assert len(names) == want
            with open(os.path.join(wsdir, names[k % len(names)], "url"), "rb") as f:
                assert f.read().endswith(b"\n")
            time.sleep(0.3)  # let dir_ttl expire under the readers
        return True

    with ThreadPoolExecutor(16) as ex:
        assert all(ex.map(reader, range(16)))


def test_debug_output_has_no_secret(emulator, mount):
    emu = emulator("--generate-pai", "30")
    m = mount(emu, pai_config(emu), opts=["debug"])
    for root, dirs, files in os.walk(m.path):
        for f in files:
            open(os.path.join(root, f), "rb").read()
    log = m.log()
    assert "GETATTR" in log or "getattr" in log.lower()
    assert "testsecret" not in log
    assert not any(cs["CodeRepoAccessToken"] in log for w in pai_workspaces(emu)
                   for cs in w["code_sources"] if cs["CodeRepoAccessToken"])


def test_listing_is_exact_under_throttling_and_5xx(emulator, mount):
    emu = emulator("--generate-pai", "2000", "--seed", "7")
    ws = pai_workspaces(emu)[0]
    m = mount(emu, pai_config(emu, workspaces=[ws["WorkspaceId"]]), opts=["retries=8"])
    emu.configure(fail_5xx=0.2, throttle=0.1, retry_after=0)
    names = expected_names(ws["code_sources"])
    listed = os.listdir(os.fsencode(os.path.join(m.path, "pai", ws["WorkspaceId"])))
    assert sorted(listed) == sorted(names.values())
    s = emu.stats()
    assert s.get("fault.5xx", 0) + s.get("fault.throttle", 0) > 0


def test_backend_failing_gives_eio_with_nothing_cached(emulator, mount):
    emu = emulator("--generate-pai", "10")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    m = mount(emu, pai_config(emu, workspaces=[ws]), opts=["retries=1", "timeout=2"])
    emu.configure(fail_5xx=1.0)
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(m.path, "pai", ws))
    assert e.value.errno == errno.EIO
    assert "ServiceUnavailable" in m.log()
