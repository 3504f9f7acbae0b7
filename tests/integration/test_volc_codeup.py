"""Volcengine and Codeup mounted for real against the emulator, beside PAI."""
import json
import os
import subprocess

import pytest

from names_rules import GROUP_FILES, assign
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
    volc = os.path.join(m.path, "volc")
    dirs = [d for d in os.listdir(volc) if not os.path.islink(os.path.join(volc, d))]
    assert sorted(dirs) == sorted(w["Id"] for w in data)
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


def mount_refused(tmp_path, run_codesrcfs, config):
    """Mount with config (a private file), which must fail; returns the mount's stderr."""
    cfg = tmp_path / "config"
    cfg.write_text(config)
    cfg.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")])
    assert r.returncode != 0
    return r.stderr


def test_volc_wrong_key_refuses_mount(emulator, tmp_path, run_codesrcfs):
    emu = emulator("--generate-volc", "3")
    err = mount_refused(tmp_path, run_codesrcfs, volc_config(emu, secret="bad"))
    assert "credentials were rejected" in err


def test_provider_without_credentials_is_absent(emulator, mount):
    emu = emulator("--generate-pai", "3", "--generate-volc", "3")
    m = mount(emu, pai_config(emu))
    assert os.listdir(m.path) == ["pai"]
    m2 = mount(emu, volc_config(emu))
    assert os.listdir(m2.path) == ["volc"]


def codeup_expected(org):
    """{relative dir path: ("group"|"repo", record)} predicted from the data, with the
    docs/design.md §1 names computed per directory (groups count as older than repositories)."""
    members = {}  # parent rel path → [(raw, id, ctime, kind, record)]
    for g in org["namespaces"]:
        parent = g["fullPath"].split("/", 1)[1].rpartition("/")[0]
        members.setdefault(parent, []).append((g["path"], str(g["id"]), 0, "group", g))
    for r in org["repositories"]:
        ns = r["pathWithNamespace"].rsplit("/", 1)[0]
        parent = ns.split("/", 1)[1] if "/" in ns else ""
        members.setdefault(parent, []).append((r["path"], str(r["id"]), iso(r["createdAt"]),
                                               "repo", r))
    out = {}

    def walk(parent, prefix):
        entries = members.get(parent, [])
        reserved = GROUP_FILES if parent else ()
        names = assign([(e[0].encode(), e[1], e[2]) for e in entries], reserved)
        for raw, ident, _, kind, rec in entries:
            rel = prefix + names[ident].decode()
            out[rel] = (kind, rec)
            if kind == "group":
                walk((parent + "/" if parent else "") + raw, rel + "/")

    walk("", "")
    return out


@pytest.mark.parametrize("headers", [True, False])
def test_codeup_tree_shape_urls_and_branches(emulator, mount, headers):
    emu = emulator("--generate-codeup", "250")
    emu.configure(codeup_headers=headers)
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
    err = mount_refused(tmp_path, run_codesrcfs, codeup_config(emu, token="pt-wrong"))
    assert "credentials were rejected" in err
    assert "pt-wrong" not in err


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


def test_codeup_paging_with_and_without_headers(emulator, mount):
    for headers in (True, False):
        emu = emulator("--generate-codeup", "250")
        emu.configure(codeup_headers=headers)
        m = mount(emu, codeup_config(emu))
        org = emu.data()["codeup"]["organizations"][0]
        emu.reset_stats()
        os.listdir(os.path.join(m.path, "codeup", org["id"]))
        # 250 repositories at 100 a page: 3 pages, whichever way the end is found
        assert emu.stats()["codeup.ListRepositories"] == 3


def test_volc_lookup_uses_the_name_filter(emulator, mount):
    emu = emulator("--generate-volc", "300")
    ws = emu.data()["volc"]["workspaces"][0]
    m = mount(emu, volc_config(emu, workspaces=[ws["Id"]]))
    r = next(r for r in ws["resources"] if r["Name"] == "svc-20" or r["Name"].endswith("-20"))
    emu.reset_stats()
    with open(os.path.join(m.path, "volc", ws["Id"], r["Name"], "url")) as f:
        assert f.read() == r["Configuration"]["Git"]["Url"] + "\n"
    assert emu.stats()["volc.ListResources"] == 1


def test_volc_sts_and_environment(emulator, mount):
    emu = emulator("--generate-volc", "5", "--volc-sts", "volc-sts-token")
    m = mount(emu, f"[volc]\nendpoint = {emu.url}\n",
              env={"VOLCENGINE_ACCESS_KEY": "volcak", "VOLCENGINE_SECRET_KEY": "volcsecret",
                   "VOLCENGINE_SESSION_TOKEN": "volc-sts-token"})
    assert os.listdir(m.path) == ["volc"]
    assert os.listdir(os.path.join(m.path, "volc"))


def test_codeup_token_from_the_environment(emulator, mount):
    emu = emulator("--generate-codeup", "5")
    m = mount(emu, f"[codeup]\nendpoint = {emu.url}\n",
              env={"ALIBABA_CLOUD_YUNXIAO_ACCESS_TOKEN": "pt-testtoken",
                   "ALIBABA_CLOUD_YUNXIAO_ORGANIZATION_ID": "org-1"})
    assert sorted(os.listdir(os.path.join(m.path, "codeup"))) == ["demo-org", "org-1"]
    assert os.readlink(os.path.join(m.path, "codeup", "demo-org")) == "org-1"


def test_git_clone_loop_over_a_codeup_group(emulator, mount, tmp_path):
    repos = tmp_path / "repos"
    items = []
    for i, name in enumerate(["api", "worker", "docs"]):
        src = tmp_path / "src" / name
        subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True)
        (src / "README").write_text(name + "\n")
        subprocess.run(["git", "-C", str(src), "add", "README"], check=True)
        subprocess.run(["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-qm", "init"], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(repos / f"{name}.git")],
                       check=True)
        items.append({"id": 100 + i, "name": name, "path": name,
                      "pathWithNamespace": f"o/backend/{name}", "namespaceId": 7,
                      "httpUrlToRepo": f"file://{repos}/{name}.git", "defaultBranch": "main",
                      "webUrl": "https://codeup.example/x", "createdAt": "2024-01-01T00:00:00Z"})
    data = {"codeup": {"organizations": [{"id": "o", "namespaces": [
        {"id": 7, "name": "backend", "path": "backend", "fullPath": "o/backend", "kind": "group",
         "parentId": 1, "webUrl": "https://codeup.example/o/backend"}], "repositories": items}]}}
    (tmp_path / "data.json").write_text(json.dumps(data))
    emu = emulator("--data", str(tmp_path / "data.json"))
    m = mount(emu, codeup_config(emu, orgs=("o",)))
    clones = tmp_path / "clones"
    script = (f'for d in "{m.path}"/codeup/o/backend/*/; do '
              f'git clone -q --branch "$(cat "$d/branch")" "$(cat "$d/url")" '
              f'"{clones}/$(basename "$d")" || exit 1; done')
    subprocess.run(["bash", "-c", script], check=True, timeout=120)
    assert sorted(os.listdir(clones)) == ["api", "docs", "worker"]


def test_codeup_organization_not_allowed_gives_eacces(emulator, mount):
    """Past the check at mount (which refuses it: test_mount_checks.py), an organization
    the user is not in is EACCES."""
    emu = emulator("--generate-codeup", "5")
    m = mount(emu, codeup_config(emu, orgs=("org-1", "not-mine")), opts=["delay_connect"])
    assert sorted(os.listdir(os.path.join(m.path, "codeup"))) == ["demo-org", "not-mine", "org-1"]
    with pytest.raises(PermissionError):
        os.listdir(os.path.join(m.path, "codeup", "not-mine"))
    assert "Forbidden" in m.log() and "request id" in m.log()
    assert os.listdir(os.path.join(m.path, "codeup", "org-1"))


def test_volc_throttling_is_retried(emulator, mount):
    emu = emulator("--generate-volc", "250", "--seed", "3")
    ws = emu.data()["volc"]["workspaces"][0]
    m = mount(emu, volc_config(emu, workspaces=[ws["Id"]]), opts=["retries=8"])
    emu.configure(throttle=0.3, retry_after=0)
    names = volc_names(ws["resources"])
    listed = os.listdir(os.fsencode(os.path.join(m.path, "volc", ws["Id"])))
    assert sorted(listed) == sorted(names.values())
    assert emu.stats().get("fault.throttle", 0) > 0
