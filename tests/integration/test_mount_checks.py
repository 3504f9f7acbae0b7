"""The checks at mount, for real against the emulator: a refused key names where it came
from, a configured workspace or organization id that does not exist is a mount error
naming it, and the providers are checked at once (docs/configuration.md, "At mount")."""
import json
import os
import time

from conftest import is_mount
from test_credentials_logs_xattrs import aliyun, ak
from test_pai import pai_config
from test_volc_codeup import codeup_config, volc_config

SECRETS = ("testsecret", "volcsecret", "pt-testtoken", "wrongsecret", "pt-wrong")


def refused(tmp_path, run_codesrcfs, text, env=None, opts=()):
    """A mount that must fail: (its stderr, the configuration file's path)."""
    cfg = tmp_path / "config"
    cfg.write_text(text)
    cfg.chmod(0o600)
    mp = tmp_path / "mnt"
    mp.mkdir(exist_ok=True)
    r = run_codesrcfs(["-f", "-o", ",".join([f"config={cfg}", *opts]), mp], env=env)
    assert r.returncode != 0 and not is_mount(str(mp)), r.stderr
    for secret in SECRETS:
        assert secret not in r.stderr, r.stderr
    return r.stderr, str(cfg)


def cannot_mount(stderr, provider):
    """The one line that refuses provider's part of the mount."""
    lines = [ln for ln in stderr.splitlines()
             if ln.startswith(f"codesrcfs: {provider}: cannot mount: ")]
    assert len(lines) == 1, stderr
    return lines[0]


# ---------------------------------------------------------------------------- whose key


def test_wrong_secret_from_the_environment_is_named(emulator, tmp_path, run_codesrcfs):
    """The file is right; the environment, which wins, is not: the line says so."""
    emu = emulator("--generate-pai", "3")
    err, _ = refused(tmp_path, run_codesrcfs, pai_config(emu),
                     env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "testak",
                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "wrongsecret"})
    line = cannot_mount(err, "pai")
    assert "the credentials were rejected" in line
    assert "access_key_id from ALIBABA_CLOUD_ACCESS_KEY_ID in the environment" in line
    assert "access_key_secret from ALIBABA_CLOUD_ACCESS_KEY_SECRET in the environment" in line
    assert "SignatureDoesNotMatch" in err  # what the cloud said, logged before it


def test_wrong_secret_from_the_file_is_named_with_its_line(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    err, cfg = refused(tmp_path, run_codesrcfs, pai_config(emu, secret="wrongsecret"))
    line = cannot_mount(err, "pai")
    assert "the credentials were rejected" in line
    assert f"access_key_id from {cfg}:2, access_key_secret from {cfg}:3" in line
    assert "environment" not in line


def test_key_halves_from_file_and_environment_each_named(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    err, cfg = refused(tmp_path, run_codesrcfs, pai_config(emu),
                       env={"ALICLOUD_ACCESS_KEY_SECRET": "wrongsecret"})
    line = cannot_mount(err, "pai")
    assert (f"access_key_id from {cfg}:2, access_key_secret from ALICLOUD_ACCESS_KEY_SECRET "
            "in the environment") in line


def test_wrong_key_from_a_vendor_file_names_file_and_profile(emulator, tmp_path,
                                                             run_codesrcfs):
    emu = emulator("--generate-pai", "3")
    home = tmp_path / "home"
    aliyun(home, [ak("work", secret="wrongsecret")], current="work")
    err, _ = refused(tmp_path, run_codesrcfs, f"[pai]\nendpoint = {emu.url}\n",
                     env={"HOME": str(home)})
    line = cannot_mount(err, "pai")
    assert f"access_key_secret from {home}/.aliyun/config.json profile 'work'" in line


def test_wrong_tokens_and_keys_of_every_cloud_each_get_their_line(emulator, tmp_path,
                                                                  run_codesrcfs):
    emu = emulator("--generate-pai", "3", "--generate-volc", "3", "--generate-codeup", "3")
    err, cfg = refused(tmp_path, run_codesrcfs,
                       pai_config(emu) + volc_config(emu, secret="wrongsecret")
                       + codeup_config(emu), env={"CODEUP_TOKEN": "pt-wrong"})
    assert "codesrcfs: pai: cannot mount" not in err
    assert f"secret_key from {cfg}:7" in cannot_mount(err, "volc")
    assert "token from CODEUP_TOKEN in the environment" in cannot_mount(err, "codeup")


# ---------------------------------------------------------------------------- typos in ids


def test_workspace_typo_is_a_mount_error_naming_it(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-pai", "3", "--generate-volc", "3")
    text = pai_config(emu, workspaces=["1001", "9999", "1002"]) + volc_config(
        emu, workspaces=["ws-0001", "ws-typo"])
    err, cfg = refused(tmp_path, run_codesrcfs, text)
    line = cannot_mount(err, "pai")
    assert "workspace 9999 not found" in line and f"(workspaces from {cfg}:5)" in line
    assert "1001" not in line and "1002" not in line
    line = cannot_mount(err, "volc")
    assert "workspace ws-typo not found" in line and f"(workspaces from {cfg}:10)" in line
    s = emu.stats()  # one call each: the check is the confirmation
    assert s["pai.ListWorkspaces"] == 1 and s["volc.ListWorkspaces"] == 1, s
    assert "pai.ListCodeSources" not in s and "volc.ListResources" not in s


def test_organization_typo_is_a_mount_error_naming_it(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-codeup", "3")
    err, _ = refused(tmp_path, run_codesrcfs, codeup_config(emu, orgs=()).replace(
        "organizations = \n", ""), env={"ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID": "orq-1"})
    line = cannot_mount(err, "codeup")
    assert "organization orq-1 not found" in line
    assert "(organizations from ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID in the environment)" in line
    s = emu.stats()
    assert s["codeup.ListOrganizations"] == 1 and s["total"] == 1, s


def test_confirmed_ids_mount_with_one_call_each(emulator, mount):
    emu = emulator("--generate-pai", "3", "--generate-volc", "3", "--generate-codeup", "3")
    m = mount(emu, pai_config(emu, workspaces=["1002", "1001"])
              + volc_config(emu, workspaces=["ws-0001"]) + codeup_config(emu))
    s = emu.stats()
    assert (s["pai.ListWorkspaces"], s["volc.ListWorkspaces"],
            s["codeup.ListOrganizations"], s["total"]) == (1, 1, 1, 3), s
    assert sorted(os.listdir(os.path.join(m.path, "pai"))) == ["1001", "1002"]


def test_confirmation_follows_the_servers_pages(emulator, mount, tmp_path):
    """A server that pages by fewer than asked, and a user in more organizations than a
    page holds: the ids on later pages are found, not reported missing."""
    orgs = [{"id": f"org-{i}", "name": f"o{i}", "namespaces": [], "repositories": []}
            for i in range(1, 131)]
    data = tmp_path / "orgs.json"
    data.write_text(json.dumps({"codeup": {"organizations": orgs}}))
    emu = emulator("--data", str(data))
    mount(emu, codeup_config(emu, orgs=("org-3", "org-120")))
    assert emu.stats()["codeup.ListOrganizations"] == 2  # perPage 100: the second has org-120
    emu = emulator("--generate-pai", "3", "--max-page-size", "1")
    m = mount(emu, pai_config(emu, workspaces=["1001", "1002"]))
    assert emu.stats()["pai.ListWorkspaces"] == 2
    assert sorted(os.listdir(os.path.join(m.path, "pai"))) == ["1001", "1002"]


def test_delay_connect_skips_the_confirmation(emulator, mount):
    emu = emulator("--generate-pai", "3")
    m = mount(emu, pai_config(emu, workspaces=["1001", "9999"]), opts=["delay_connect"])
    assert sorted(os.listdir(os.path.join(m.path, "pai"))) == ["1001", "9999"]
    assert emu.stats().get("total", 0) == 0


# ---------------------------------------------------------------------------- at once


def test_providers_are_checked_at_once(emulator, mount):
    """A bound on serial behaviour, not a speed target: with every answer 2 s late, three
    checks one after another take 6 s or more; at once, about 2 s."""
    latency = 2.0
    emu = emulator("--generate-pai", "3", "--generate-volc", "3", "--generate-codeup", "3",
                   "--latency-ms", int(latency * 1000))
    start = time.monotonic()
    m = mount(emu, pai_config(emu, workspaces=["1001"]) + volc_config(emu)
              + codeup_config(emu), timeout=20)
    elapsed = time.monotonic() - start
    assert latency <= elapsed < 2.5 * latency, elapsed
    s = emu.stats()
    assert (s["pai.ListWorkspaces"], s["volc.ListWorkspaces"],
            s["codeup.ListOrganizations"]) == (1, 1, 1), s
    assert sorted(os.listdir(m.path)) == ["codeup", "pai", "volc"]
