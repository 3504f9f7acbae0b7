"""What a hostile or careless cloud can put in a listing, served through a real mount: ids
that collide once cut (naming must stay linear), an organization named '..', credentials in
clone URLs and in keys the word list must catch, and clone URLs that would turn
`git clone "$(cat url)"` into something else."""
import json
import os
import subprocess

from names_rules import assign
from test_contrib import make_repo, run_clone_all
from test_docs import readme_session
from test_pai import pai_config
from test_volc_codeup import volc_config

WS = "7"


def pai_data(tmp_path, sources):
    """The emulator's data file: PAI workspace 7 holding sources, dicts of item fields."""
    items = []
    for i, s in enumerate(sources):
        item = {"CodeSourceId": f"code-{i}", "DisplayName": f"s{i}", "CodeBranch": "",
                "WorkspaceId": WS, "GmtCreateTime": "2024-01-01T00:00:00Z"}
        item.update(s)
        items.append(item)
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": WS, "WorkspaceName": "w", "code_sources": items}]}}))
    return data


# ---- names --------------------------------------------------------------------------------


def test_thousands_of_ids_with_one_long_prefix_list(tmp_path, emulator, mount):
    """8,000 entries named 'x' whose ids differ only past 300 bytes: their "~<id>" suffixes
    are one once cut, so only a counter tells them apart. This took 19 s of the tree's lock
    when each entry walked the counters the ones before it took."""
    n = 8000
    sources = [{"CodeSourceId": "A" * 300 + str(i), "DisplayName": "x",
                "GmtCreateTime": "2024-01-01T00:00:00Z"} for i in range(n)]
    emu = emulator("--data", pai_data(tmp_path, sources))
    m = mount(emu, pai_config(emu, workspaces=[WS]))
    names = os.listdir(os.path.join(m.path, "pai", WS))
    assert len(names) == n and len(set(names)) == n
    assert "x" in names
    assert all(len(x.encode()) <= 255 for x in names)
    # The oldest (then smallest id) keeps the name; each name leads to its own record.
    with open(os.path.join(m.path, "pai", WS, "x", "meta.json")) as f:
        assert json.load(f)["CodeSourceId"] == "A" * 300 + "0"
    ids = set()
    for name in names[:50]:
        with open(os.path.join(m.path, "pai", WS, name, "meta.json")) as f:
            ids.add(json.load(f)["CodeSourceId"])
    assert len(ids) == 50


def test_colliding_ids_are_named_as_the_rules_say(tmp_path, emulator, mount):
    """The counter and repeated-suffix forms, through the mount, as names_rules predicts."""
    ids = ["A" * 300 + str(i) for i in range(5)] + ["B" * 240 + str(i) for i in range(3)]
    ids += ["q" + c for c in "/\x01_"]  # made safe, all three are "q_"
    sources = [{"CodeSourceId": i, "DisplayName": "x"} for i in ids]
    emu = emulator("--data", pai_data(tmp_path, sources))
    m = mount(emu, pai_config(emu, workspaces=[WS]))
    want = assign([(b"x", i, 1704067200) for i in ids])
    assert sorted(os.listdir(os.path.join(m.path, "pai", WS).encode())) == sorted(want.values())
    for ident, name in want.items():
        with open(os.path.join(m.path.encode(), b"pai", WS.encode(), name, b"meta.json")) as f:
            assert json.load(f)["CodeSourceId"] == ident


def test_organization_dotdot_is_refused_at_mount(emulator, tmp_path, run_codesrcfs):
    """It mounted, then listing it failed with "Cannot allocate memory": the request path
    could not hold it."""
    emu = emulator("--generate-codeup", "3")
    cfg = tmp_path / "config"
    cfg.write_text(f"[codeup]\ntoken = pt-testtoken\nendpoint = {emu.url}\n"
                   "organizations = org-1, ..\n")
    cfg.chmod(0o600)
    (tmp_path / "mnt").mkdir()
    r = run_codesrcfs(["-f", "-o", f"config={cfg}", str(tmp_path / "mnt")])
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [
        f"codesrcfs: {cfg}:4: value of 'organizations' in [codeup] lists '.' or '..', "
        "which is no id"]


# ---- secrets ------------------------------------------------------------------------------


def test_credentials_in_urls_and_keys_are_redacted(tmp_path, emulator, mount):
    git = {"Url": "https://oauth2:ghp_SECRET1@github.com/x.git", "UserName": "u",
           "private_key": "SECRET2", "ApiKey": "SECRET3", "Authorization": "SECRET4",
           "ssh_pass": "SECRET5", "x\u0000token": "SECRET6",
           "Mirrors": ["https://:SECRET7@mirror.example/x.git"]}
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"volc": {"workspaces": [{"Id": "ws-1", "Name": "w", "resources": [
        {"Id": "r1", "Name": "repo", "Type": "Git", "Configuration": {"Git": git},
         "CreateTime": "2024-01-01T10:00:00+08:00"}]}]}}))
    emu = emulator("--data", data)
    m = mount(emu, volc_config(emu, workspaces=["ws-1"]))
    d = os.path.join(m.path, "volc", "ws-1", "repo")
    with open(os.path.join(d, "url")) as f:
        assert f.read() == "https://oauth2@github.com/x.git\n"
    with open(os.path.join(d, "meta.json"), "rb") as f:
        raw = f.read()
    assert b"SECRET" not in raw
    got = json.loads(raw)["Configuration"]["Git"]
    assert got["Url"] == "https://oauth2:******@github.com/x.git"
    assert got["Mirrors"] == ["https://:******@mirror.example/x.git"]
    for key in ("private_key", "ApiKey", "Authorization", "ssh_pass"):
        assert got[key] == "******", key
    assert got["UserName"] == "u"
    assert not any(k.startswith("x") for k in got)  # the key with a NUL is left out
    # show_secrets shows them all, the url's password included.
    m2 = mount(emu, volc_config(emu, workspaces=["ws-1"]), opts=["show_secrets"])
    d2 = os.path.join(m2.path, "volc", "ws-1", "repo")
    with open(os.path.join(d2, "url")) as f:
        assert f.read() == "https://oauth2:ghp_SECRET1@github.com/x.git\n"
    with open(os.path.join(d2, "meta.json")) as f:
        assert json.load(f)["Configuration"]["Git"]["ssh_pass"] == "SECRET5"


# ---- clone URLs ---------------------------------------------------------------------------


def hostile_world(tmp_path, emulator, mount):
    """Two good code sources (file:// bare repositories) and three whose CodeRepo is no
    usable clone URL; the NUL one begins like a good URL, so a cut one would clone."""
    _, good_a = make_repo(tmp_path, "good-a")
    _, good_b = make_repo(tmp_path, "good-b")
    hostile = {"evil-dash": "--upload-pack=touch PWNED",
               "evil-nl": f"file://{good_a}\n--upload-pack=touch PWNED",
               "evil-nul": f"file://{good_b}\u0000--upload-pack=touch PWNED"}
    sources = [{"DisplayName": "good-a", "CodeRepo": f"file://{good_a}"},
               {"DisplayName": "good-b", "CodeRepo": f"file://{good_b}"}]
    sources += [{"DisplayName": k, "CodeRepo": v} for k, v in hostile.items()]
    emu = emulator("--data", pai_data(tmp_path, sources))
    m = mount(emu, pai_config(emu, workspaces=[WS]))
    return m, os.path.join(m.path, "pai", WS), hostile


def test_unusable_clone_urls_give_no_url_file(tmp_path, emulator, mount):
    m, ws, hostile = hostile_world(tmp_path, emulator, mount)
    for name, value in hostile.items():
        d = os.path.join(ws, name)
        assert sorted(os.listdir(d)) == ["meta.json"], name
        with open(os.path.join(d, "meta.json")) as f:
            assert json.load(f)["CodeRepo"] == value  # meta.json keeps it, NUL and all
    for name in ("good-a", "good-b"):
        assert sorted(os.listdir(os.path.join(ws, name))) == ["meta.json", "url"]
    log = m.log()
    for i, why in ((2, "it starts with '-'"), (3, "it holds a control character"),
                   (4, "it holds a control character")):
        assert f"CodeRepo of code-{i} is no usable clone URL ({why}" in log
    assert "PWNED" not in log and "upload-pack" not in log


def test_clone_all_and_readme_loop_skip_unusable_urls(tmp_path, emulator, mount):
    m, ws, _ = hostile_world(tmp_path, emulator, mount)
    dest = tmp_path / "clones"
    r = run_clone_all(ws, dest)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(dest)) == ["good-a", "good-b"]
    # The README's own loop, as written, over the same directory.
    loop = [cmd for cmd, _ in readme_session() if "git clone" in cmd]
    assert len(loop) == 1
    work = tmp_path / "work-readme"
    work.mkdir()
    r = subprocess.run(["bash", "-c", loop[0].replace("/mnt/src/pai/1234", ws)], cwd=work,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(work)) == ["good-a", "good-b"]
    for d in (dest, work, tmp_path):
        assert not os.path.exists(os.path.join(d, "PWNED"))
