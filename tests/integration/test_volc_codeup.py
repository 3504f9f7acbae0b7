"""Volcengine and Codeup mounted for real against the emulator, beside PAI."""
import json
import os
import subprocess

import pytest

from names_rules import assign
from test_pai import pai_config, pai_workspaces


def volc_config(emu, secret="volcsecret", workspaces=None):
    text = f"[volc]\naccess_key = volcak\nsecret_key = {secret}\nendpoint = {emu.url}\n"
    if workspaces:
        text += "workspaces = " + ", ".join(workspaces) + "\n"
    return text


def codeup_config(emu, token="pt-testtoken", orgs=("org-1",)):
    return (f"[codeup]\ntoken = {token}\nendpoint = {emu.url}\n"
            f"organizations = {', '.join(orgs)}\n")


def iso(t):
    from datetime import datetime

    return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()) if t else 0


def volc_names(resources):
    return assign([(r["Name"].encode("utf-8", "surrogatepass"), r["Id"], iso(r.get("CreateTime")))
                   for r in resources])


def test_volc_every_resource_once_no_branch_no_secret(emulator, mount):
    emu = emulator("--generate-volc", "230")
    m = mount(emu, volc_config(emu))
    data = emu.data()["volc"]["workspaces"]
    assert sorted(os.listdir(os.path.join(m.path, "volc"))) == sorted(w["Id"] for w in data)
    secrets = set()
    for ws in data:
        names = volc_names(ws["resources"])
        wsdir = os.path.join(os.fsencode(m.path), b"volc", ws["Id"].encode())
        assert sorted(os.listdir(wsdir)) == sorted(names.values())
        for r in ws["resources"]:
            d = os.path.join(wsdir, names[r["Id"]])
            with open(os.path.join(d, b"url"), "rb") as f:
                assert f.read() == r["Configuration"]["Git"]["Url"].encode() + b"\n"
            assert not os.path.exists(os.path.join(d, b"branch"))
            meta = json.load(open(os.path.join(d, b"meta.json"), "rb"))
            assert meta["Id"] == r["Id"]
            for k in ("UserToken", "Password", "AccessKey", "SecretKey"):
                v = r["Configuration"]["Git"].get(k)
                if v:
                    secrets.add(v)
                    assert meta["Configuration"]["Git"][k] == "******"
    assert secrets
    out = subprocess.run(["grep", "-r", "-F", "-f", "/dev/stdin", m.path],
                         input="\n".join(secrets).encode(), capture_output=True, timeout=60)
    assert out.returncode == 1, out.stdout[:300]


def test_volc_wrong_key_refuses_mount(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-volc", "3")
    cfg = tmp_path / "config"
    cfg.write_text(volc_config(emu, secret="bad"))
    cfg.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")])
    assert r.returncode != 0
    assert "credentials were rejected" in r.stderr


def test_provider_without_credentials_is_absent(emulator, mount):
    emu = emulator("--generate-pai", "3", "--generate-volc", "3")
    m = mount(emu, pai_config(emu))
    assert os.listdir(m.path) == ["pai"]
    m2 = mount(emu, volc_config(emu))
    assert os.listdir(m2.path) == ["volc"]


def codeup_expected(org):
    """{relative dir path: repository or group record} predicted from the data."""
    groups = {g["id"]: g for g in org["namespaces"]}
    out = {}
    for g in org["namespaces"]:
        rel = g["fullPath"].split("/", 1)[1]
        out[rel] = ("group", g)
    for r in org["repositories"]:
        ns = r["pathWithNamespace"].rsplit("/", 1)[0]
        rel_ns = ns.split("/", 1)[1] if "/" in ns else ""
        name = r["path"]
        if rel_ns and name in ("meta.json", "url"):  # the group serves these files itself
            name += f"~{r['id']}"
        out[(rel_ns + "/" if rel_ns else "") + name] = ("repo", r)
    assert groups
    return out


def test_codeup_tree_shape_urls_and_branches(emulator, mount):
    emu = emulator("--generate-codeup", "120")
    m = mount(emu, codeup_config(emu))
    org = emu.data()["codeup"]["organizations"][0]
    want = codeup_expected(org)
    base = os.path.join(m.path, "codeup", org["id"])
    seen = {}
    for root, dirs, files in os.walk(base):
        rel = os.path.relpath(root, base)
        if rel == ".":
            continue
        seen[rel] = set(files)
    assert set(seen) == set(want)
    for rel, (kind, rec) in want.items():
        with open(os.path.join(base, rel, "url")) as f:
            url = f.read()
        if kind == "group":
            assert url == rec["webUrl"] + "\n"
            assert "branch" not in seen[rel]
        else:
            assert url == rec["httpUrlToRepo"] + "\n"
            with open(os.path.join(base, rel, "branch")) as f:
                assert f.read() == rec["defaultBranch"] + "\n"
        meta = json.load(open(os.path.join(base, rel, "meta.json")))
        assert str(meta["id"]) == str(rec["id"])


def test_codeup_fills_missing_url_and_branch_lazily(emulator, mount):
    emu = emulator("--generate-codeup", "40")
    emu.configure(codeup_list_full=False, codeup_headers=False)
    m = mount(emu, codeup_config(emu))
    org = emu.data()["codeup"]["organizations"][0]
    want = codeup_expected(org)
    base = os.path.join(m.path, "codeup", org["id"])
    os.listdir(base)
    emu.reset_stats()
    rel, (_, repo) = next((k, v) for k, v in want.items() if v[0] == "repo")
    with open(os.path.join(base, rel, "branch")) as f:
        assert f.read() == repo["defaultBranch"] + "\n"
    with open(os.path.join(base, rel, "url")) as f:
        assert f.read() == repo["httpUrlToRepo"] + "\n"
    got = emu.stats().get("codeup.GetRepository", 0)
    assert got == 1
    with open(os.path.join(base, rel, "url")) as f:
        f.read()
    assert emu.stats().get("codeup.GetRepository", 0) == 1  # cached


def test_codeup_bad_token_refuses_mount(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-codeup", "5")
    cfg = tmp_path / "config"
    cfg.write_text(codeup_config(emu, token="pt-wrong"))
    cfg.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")])
    assert r.returncode != 0
    assert "credentials were rejected" in r.stderr
    assert "pt-wrong" not in r.stderr


def test_all_three_providers_at_once(emulator, mount, tmp_path):
    emu = emulator("--generate-pai", "20", "--generate-volc", "20", "--generate-codeup", "30")
    m = mount(emu, pai_config(emu) + volc_config(emu) + codeup_config(emu))
    assert sorted(os.listdir(m.path)) == ["codeup", "pai", "volc"]
    total = sum(len(w["code_sources"]) for w in pai_workspaces(emu))
    total += sum(len(w["resources"]) for w in emu.data()["volc"]["workspaces"])
    org = emu.data()["codeup"]["organizations"][0]
    total += len(org["namespaces"]) + len(org["repositories"])
    out = subprocess.run(["find", m.path, "-type", "f", "-name", "url", "-print0"], capture_output=True,
                         check=True, timeout=120).stdout
    assert len(out.split(b"\0")) - 1 == total
