"""Every example of the README and the man page, run as written against the emulator, so
the docs cannot rot. The substitutions: /mnt/src (and the man page's /home/alice/src)
becomes a temporary directory, a configuration path this test's file, the configuration
gets the emulator's endpoint, make install gets the DESTDIR its comment names, and git is
told (insteadOf) that https://github.com/example/ lives in local bare repositories. One
line cannot run as written: `systemctl --user enable --now codesrcfs` needs a systemd user
manager, which neither this machine nor CI has; the installed unit's own ExecStart,
ExecReload and ExecStop lines are run instead, as systemd runs them. The docs' tables and
the ones `make bench` writes are checked for shape."""
import glob
import json
import os
import re
import subprocess

import pytest

from test_install import stage  # noqa: F401  (a fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("CODESRCFS_BIN", os.path.join(ROOT, "build", "codesrcfs"))

SOURCES = [  # what the examples show: two code sources share a display name
    ("code-20210118", "dlc-examples", "master", "dlc-examples", "2021-01-18T12:52:15Z"),
    ("code-20230301", "my-model", "main", "my-model", "2023-03-01T08:00:00Z"),
    ("code-20230502", "my-model", "", "my-model-v2", "2023-05-02T08:00:00Z"),
]


def parse_session(lines):
    """[(command, [expected output lines])] from '$ ' prompts, '> ' continuations and
    here-documents."""
    steps, heredoc = [], None
    for line in lines:
        if heredoc is not None:
            steps[-1][0].append(line)
            if line == heredoc:
                heredoc = None
        elif line.startswith("$ "):
            steps.append(([line[2:]], []))
            m = re.search(r"<<'?(\w+)'?", line)
            heredoc = m.group(1) if m else None
        elif line.startswith("> "):
            steps[-1][0].append(line[2:])
        elif steps and line.strip():
            steps[-1][1].append(line)
    return [("\n".join(cmd), out) for cmd, out in steps]


def readme_session():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## A session", 1)[1].split("\n## ", 1)[0]
    lines = [ln[4:] for ln in section.splitlines() if ln.startswith("    ")]
    return parse_session(lines)


def man_example():
    text = open(os.path.join(ROOT, "docs", "codesrcfs.1"), encoding="utf-8").read()
    block = text.split(".SH EXAMPLES", 1)[1].split(".RS\n", 1)[1].split("\n.RE", 1)[0]
    block = block.replace("\\-", "-").replace("\\e", "\\")
    return parse_session(block.splitlines())


@pytest.fixture
def world(tmp_path, emulator):
    """Bare repositories, git told where github.com/example is, the emulator, a shell."""
    repos = tmp_path / "repos"
    sources = []
    for ident, name, branch, repo, created in SOURCES:
        src = tmp_path / "src" / repo
        subprocess.run(["git", "init", "-q", "-b", branch or "main", str(src)], check=True)
        (src / "README").write_text(repo + "\n")
        subprocess.run(["git", "-C", str(src), "add", "README"], check=True)
        subprocess.run(["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-qm", "init"], check=True)
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(repos / f"{repo}.git")],
                       check=True)
        sources.append({"CodeSourceId": ident, "DisplayName": name, "CodeBranch": branch,
                        "CodeRepo": f"https://github.com/example/{repo}.git",
                        "WorkspaceId": "1234", "GmtCreateTime": created,
                        "GmtModifyTime": created, "CodeRepoAccessToken": "ghp_hidden"})
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"pai": {"workspaces": [
        {"WorkspaceId": "1234", "WorkspaceName": "docs", "code_sources": sources}]}}))
    emu = emulator("--data", str(data), "--pai-key", "LTAI5tExampleKeyId:ExampleSecret")
    home, work, mnt, bindir = (tmp_path / d for d in ("home", "work", "mnt", "bin"))
    for d in (home, work, bindir):
        d.mkdir()
    (bindir / "codesrcfs").symlink_to(BINARY)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(f'[url "file://{repos}/"]\n\tinsteadOf = https://github.com/example/\n')
    editor = tmp_path / "editor"
    editor.write_text("#!/bin/sh\ncat > \"$1\" <<EOF\n[pai]\naccess_key_id = LTAI5tExampleKeyId\n"
                      "access_key_secret = ExampleSecret\nworkspaces = 1234\n"
                      f"endpoint = {emu.url}\nEOF\n")
    editor.chmod(0o755)
    env = {"HOME": str(home), "PATH": f"{bindir}:{os.environ['PATH']}",
           "GIT_CONFIG_GLOBAL": str(gitconfig), "EDITOR": str(editor), "LANG": "C.UTF-8"}
    yield {"emu": emu, "env": env, "work": work, "mnt": str(mnt), "home": home}
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-uz", str(mnt)], check=False)


def run_session(world, steps):
    config = world["home"] / ".config" / "codesrcfs" / "config"
    for cmd, expected in steps:
        cmd = cmd.replace("/mnt/src", world["mnt"])
        if re.match(r"codesrcfs ", cmd) and config.exists() and "endpoint" not in config.read_text():
            with open(config, "a") as f:  # the one change: where the cloud is
                f.write(f"endpoint = {world['emu'].url}\n")
        r = subprocess.run(["bash", "-c", cmd], cwd=world["work"], env=world["env"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{cmd!r} failed: {r.stderr}"
        if expected:
            want = " ".join(expected).replace("/mnt/src", world["mnt"]).split()
            assert sorted(r.stdout.split()) == sorted(want), cmd


def test_readme_session_runs_as_written(world):
    steps = readme_session()
    assert len(steps) >= 9
    run_session(world, steps)
    for repo in ("dlc-examples", "my-model", "my-model~code-20230502"):
        assert (world["work"] / repo / "README").exists()
    assert not os.path.ismount(world["mnt"])


def test_man_page_example_runs_as_written(world):
    steps = man_example()
    assert any(cmd.startswith("codesrcfs ") for cmd, _ in steps)
    run_session(world, steps)
    assert (world["work"] / "dlc-examples" / "README").read_text() == "dlc-examples\n"
    assert not os.path.ismount(world["mnt"])


# ---- the other examples: install, fstab, mount -t and --refresh, clone-all.sh --------------

MAN = os.path.join(ROOT, "docs", "codesrcfs.1")


def man_blocks(section):
    """The example blocks (.nf .RS … .RE .fi) of a section of the man page, as shown."""
    text = open(MAN, encoding="utf-8").read()
    body = text.split(f".SH {section}\n", 1)[1].split("\n.SH ", 1)[0]
    blocks = re.findall(r"\.nf\n\.RS\n(.*?)\n\.RE\n\.fi", body, re.S)
    return [b.replace("\\-", "-").replace("\\e", "\\") for b in blocks]


def readme_install_lines():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    return [ln[4:] for ln in section.splitlines() if ln.startswith("    ")]


def local(text, mp, cfg):
    """The one change to an example: its mount points and configuration are this test's."""
    for old, new in (("/home/alice/.config/codesrcfs/config", cfg),
                     ("/etc/codesrcfs/config", cfg), ("/home/alice/src", mp), ("/mnt/src", mp)):
        text = text.replace(old, str(new))
    return text


def test_install_and_fstab_examples_run_as_written(stage, tmp_path, emulator):
    """README: make install (into a staging root, as its comment says) and its fstab line;
    man page: both fstab lines, and mount -t with codesrcfs --refresh (of a workspace of
    this emulator); each mounted through the installed helper in a private mount
    namespace, where /sbin is the staged one."""
    from test_install import in_namespace, namespaces_work
    from test_pai import pai_files

    (install,) = [ln for ln in readme_install_lines() if ln.startswith("make install")]
    assert install.split("#")[0].split() == ["make", "install", "PREFIX=/usr"]
    assert "DESTDIR" in install  # the stage fixture ran it with DESTDIR=<stage>
    assert namespaces_work(stage), "no private mount namespace with overlayfs"
    emu = emulator("--generate-pai", "4")
    ws = sorted(w["WorkspaceId"] for w in emu.data()["pai"]["workspaces"])
    names = [w["WorkspaceName"] for w in emu.data()["pai"]["workspaces"]]  # beside the ids
    cfg, mp = pai_files(emu, tmp_path)
    fstab_lines = [ln for ln in readme_install_lines() if "fuse.codesrcfs" in ln]
    fstab_lines += man_blocks("FSTAB")[0].splitlines()
    assert len(fstab_lines) == 3
    for line in fstab_lines:
        fstab = tmp_path / "fstab"
        fstab.write_text(local(line, mp, cfg) + "\n")
        r = in_namespace(stage, f"trap 'umount -l {mp} 2>/dev/null || true' EXIT\n"
                                f"mount -T {fstab} {mp}\nls {mp}/pai\numount {mp}\n")
        assert r.returncode == 0 and sorted(r.stdout.split()) == sorted(ws + names), \
            (line, r.stdout + r.stderr)

    mount_refresh = [ln[2:] for ln in man_blocks("EXAMPLES")[2].splitlines()
                     if ln.startswith("# ")]
    assert mount_refresh[0].startswith("mount -t fuse.codesrcfs")
    assert mount_refresh[1].startswith("codesrcfs --refresh /mnt/src/pai/1234")
    refresh = local(mount_refresh[1], mp, cfg).replace("/pai/1234", f"/pai/{ws[0]}")
    emu.reset_stats()
    r = in_namespace(stage, f"trap 'umount -l {mp} 2>/dev/null || true' EXIT\n"
                            f"{local(mount_refresh[0], mp, cfg)}\nls {mp}/pai/{ws[0]} >/dev/null\n"
                            f"{refresh}\nls {mp}/pai/{ws[0]} >/dev/null\n"
                            f"umount {mp}\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert emu.stats()["pai.ListCodeSources"] == 2  # the refresh; the second ls asked nothing


def test_clone_all_example_runs_as_written(tmp_path, emulator, mount):
    """The man page's clone-all.sh line, over a Codeup organization of that id whose urls
    are local bare repositories."""
    from test_contrib import clones, emulator_with_repos, repositories_in
    from test_volc_codeup import codeup_config

    (line,) = [ln[2:] for ln in man_blocks("EXAMPLES")[1].splitlines() if ln.startswith("$ ")]
    org = re.search(r"/mnt/src/codeup/(\S+)", line).group(1)
    gen, urls = emulator_with_repos(tmp_path, emulator, [], 8)
    data = tmp_path / "org.json"
    data.write_text(json.dumps(gen.data()).replace("org-1", org))
    emu = emulator("--data", str(data))
    m = mount(emu, codeup_config(emu, orgs=(org,)))
    home = tmp_path / "user"
    home.mkdir()
    env = {**os.environ, "HOME": str(home),
           "PATH": f"{os.path.join(ROOT, 'contrib')}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", "-c", line.replace("/mnt/src", m.path)], env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    want = repositories_in(os.path.join(m.path, "codeup", org), urls)
    assert len(want) == 8 and clones(home / "code") == want


def test_systemd_user_unit_runs_as_systemd_would(stage, tmp_path, emulator):
    """The README's `systemctl --user enable --now codesrcfs` needs a systemd user manager,
    which neither this machine nor CI has: the installed unit's own ExecStart, ExecReload
    and ExecStop lines are run instead, as systemd runs them (%h the home directory,
    $MAINPID the daemon), with /usr/bin the staged one."""
    from test_install import in_namespace
    from test_pai import pai_config, pai_workspaces

    (line,) = [ln for ln in readme_install_lines() if "systemctl --user" in ln]
    assert line.split("&&")[0].strip() == "$ mkdir -p ~/src"
    unit = (stage / "usr/lib/systemd/user/codesrcfs.service").read_text()
    cmd = {k: v for k, v in re.findall(r"^(Exec\w+)=(.*)$", unit, re.M)}
    emu = emulator("--generate-pai", "4")
    ws = pai_workspaces(emu)[0]["WorkspaceId"]
    home = tmp_path / "home"
    (home / ".config" / "codesrcfs").mkdir(parents=True)
    cfg = home / ".config" / "codesrcfs" / "config"
    cfg.write_text(pai_config(emu, workspaces=[ws]))
    cfg.chmod(0o600)

    def systemd(text):
        return text.replace("%h", "$HOME")

    emu.reset_stats()
    r = in_namespace(stage, f"""export HOME={home}
mkdir -p ~/src
{systemd(cmd['ExecStart'])} &
MAINPID=$!
i=0; until grep -q " $HOME/src " /proc/self/mounts; do i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done
ls ~/src/pai/{ws} >/dev/null
{systemd(cmd['ExecReload'])}
sleep 0.5
ls ~/src/pai/{ws} | wc -l
{systemd(cmd['ExecStop'])}
wait $MAINPID
echo "exit $?"
""", own_pids=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split()[-3:] == ["4", "exit", "0"], r.stdout + r.stderr
    assert emu.stats()["pai.ListCodeSources"] == 2  # ExecReload dropped the listing


def assert_tables_keep_their_columns(text):
    """Every row of each markdown table has as many cells as the table's header row;
    cells are split on unescaped pipes."""
    width = None
    for line in text.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        width = width or len(cells)
        assert len(cells) == width, line


def test_markdown_tables_keep_their_columns():
    """A '|' inside a cell (`find | wc -l`) must be escaped, or the row gains a column."""
    docs = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs",
                                                                            "*.md")))
    for doc in docs:
        with open(doc) as f:
            assert_tables_keep_their_columns(f.read())


def load_bench():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench", os.path.join(ROOT, "contrib",
                                                                        "bench.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_writes_tables_that_keep_their_columns():
    import types
    bench = load_bench()
    b = types.SimpleNamespace(
        args=types.SimpleNamespace(entries=10, latency=20.0, parallel=8, rtt=50.0, repeat=3,
                                   cold_repeat=7),
        rss=1024,
        cold_runs=[(0.5, 0), (0.55, 2), (0.48, 0), (0.52, 0)],
        rows=[("cold ls", 0.5, 1, 0.02, None), ("first find | wc -l", 0.1, 0, None, 0.05)],
        peer_rows={"rclone": {"first find | wc -l": (61.0, 9, True)}},
        fuse_rows={"first find | wc -l": 0.2}, fuse_note=None, peer_note="stopped",
        rtt_rows=[(bench.MOUNT, "HTTP/1.1, plain", 0.11, 1, 1, 2),
                  (bench.COLD_LS, "HTTP/1.1, plain", 0.2, 1, 0, 1)],
        rtt_missing=[("h2, TLS", "no nghttpx")], no_delay=0.3)
    b.args.memory_entries = 50000
    for text in (bench.table(b), bench.rtt_table(b), bench.targets(b),
                 bench.memory_text(b.args, [1024, 2048, 1536])):
        assert text.count("\n|") >= 2, text
        assert_tables_keep_their_columns(text)
    assert "first find \\| wc -l ≤ 1.5× passthrough_ll | 100.0 ms against 200.0 ms: " \
        "0.50× | yes" in bench.targets(b)
    assert "The 4 cold ls runs: 480.0 ms to 550.0 ms; the host took CPU time from this " \
        "machine (steal in /proc/stat) during 1 of them, and the median of the 3 others is " \
        "500.0 ms." in bench.table(b)
    b.cold_runs = [(0.5, 0), (0.48, 0)]
    assert "The 2 cold ls runs: 480.0 ms to 500.0 ms; the host took no CPU time from this " \
        "machine during them (steal in /proc/stat)." in bench.table(b)


def test_bench_ideal_counts_round_trips_as_the_docs_say():
    """docs/benchmarks.md: 10,000 code sources are 100 pages; parallel=8."""
    bench = load_bench()
    ideal = bench.ideal_round_trips
    assert ideal(bench.MOUNT, 100, 8, tls=False, h2=False) == 2    # TCP + the check
    assert ideal(bench.MOUNT, 100, 8, tls=True, h2=False) == 3     # + TLS
    assert ideal(bench.FIRST, 100, 8, tls=True, h2=False) == 1     # warm connection
    assert ideal(bench.COLD_LS, 100, 8, tls=False, h2=False) == 15
    assert ideal(bench.COLD_LS, 100, 8, tls=True, h2=False) == 16
    assert ideal(bench.COLD_LS, 100, 8, tls=True, h2=True) == 14
    assert ideal(bench.COLD_LS, 10, 8, tls=False, h2=False) == 3   # the warm one takes 2
    assert ideal(bench.COLD_LS, 1, 8, tls=True, h2=False) == 1


def test_bench_keeps_what_follows_its_part_of_the_doc(tmp_path):
    bench = load_bench()
    doc = tmp_path / "benchmarks.md"
    bench.write_doc(str(doc), "first\n")
    text = doc.read_text()
    doc.write_text("# B\n\nby hand\n" + text.split("\n", 2)[2] + "\nkept\n")
    bench.write_doc(str(doc), "second\n")
    text = doc.read_text()
    assert "by hand" in text and "kept" in text and "second" in text
    assert "first" not in text


def test_demo_runs_and_prints_no_secret():
    """contrib/demo.sh (make demo) runs through, its clone loop included, and nothing it
    prints holds a secret of its configuration or its data: the configuration is shown with
    every secret and token masked, meta.json redacted."""
    from conftest import clean_env

    r = subprocess.run([os.path.join(ROOT, "contrib", "demo.sh"), BINARY], env=clean_env(),
                       capture_output=True, text=True, timeout=240)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    clones = out.split("$ ls clones")[1]
    for name in ("dlc-examples", "llm-finetune", "vision_models", "data-pipeline"):
        assert f"==> clones/{name}/README.md <==" in clones, name
    for key in ("access_key_secret", "secret_key", "token"):
        assert re.search(rf"^{key} *= \*\*\*\*\*\*$", out, re.M), key
    for secret in ("testsecret", "volcsecret", "pt-testtoken", "ghp_demoSecretToken",
                   "volc-demo-secret"):
        assert secret not in out, secret
