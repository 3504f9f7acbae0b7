#!/usr/bin/env bash
# The demo: the emulator on loopback with sample data whose urls point at local bare git
# repositories, codesrcfs mounted on a temporary directory, and a short tour.
set -euo pipefail

bin=${1:-build/codesrcfs}
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/codesrcfs-demo.XXXXXX)
mnt=$work/mnt
emu_pid=

cleanup() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" || true
	fi
	[ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; eval "$@"; }

# Bare repositories the code sources point at.
make_repo() {
	local name=$1 branch=$2 src=$work/src/$1
	git init -q -b "$branch" "$src"
	printf '# %s\n\nA sample repository of the codesrcfs demo.\n' "$name" >"$src/README.md"
	git -C "$src" add README.md
	git -C "$src" -c user.name=demo -c user.email=demo@example.com commit -qm "Initial commit"
	git clone -q --bare "$src" "$work/repos/$name.git"
}
mkdir -p "$work/repos" "$work/src" "$mnt"
for r in dlc-examples:master llm-finetune:main vision-models:dev web-frontend:main \
	 data-pipeline:main infra:main; do
	make_repo "${r%%:*}" "${r#*:}"
done
repo() { printf 'file://%s/repos/%s.git' "$work" "$1"; }

cat >"$work/data.json" <<EOF
{
  "pai": {"workspaces": [{"WorkspaceId": "1001", "WorkspaceName": "demo", "code_sources": [
    {"CodeSourceId": "code-1", "DisplayName": "dlc-examples", "Description": "examples",
     "CodeRepo": "$(repo dlc-examples)", "CodeBranch": "master", "CodeCommit": "",
     "CodeRepoUserName": "demo", "CodeRepoAccessToken": "ghp_demoSecretToken",
     "Accessibility": "PUBLIC", "UserId": "42", "WorkspaceId": "1001",
     "GmtCreateTime": "2024-01-10T08:00:00Z", "GmtModifyTime": "2024-02-01T08:00:00Z",
     "MountPath": "/root/code/"},
    {"CodeSourceId": "code-2", "DisplayName": "llm-finetune", "Description": "",
     "CodeRepo": "$(repo llm-finetune)", "CodeBranch": "main", "CodeCommit": "",
     "CodeRepoUserName": "", "CodeRepoAccessToken": "", "Accessibility": "PRIVATE",
     "UserId": "42", "WorkspaceId": "1001", "GmtCreateTime": "2024-03-05T08:00:00Z",
     "GmtModifyTime": "2024-03-05T08:00:00Z", "MountPath": "/root/code/"},
    {"CodeSourceId": "code-3", "DisplayName": "vision/models", "Description": "a / in its name",
     "CodeRepo": "$(repo vision-models)", "CodeBranch": "dev", "CodeCommit": "",
     "CodeRepoUserName": "", "CodeRepoAccessToken": "", "Accessibility": "PRIVATE",
     "UserId": "42", "WorkspaceId": "1001", "GmtCreateTime": "2024-04-01T08:00:00Z",
     "GmtModifyTime": "2024-04-01T08:00:00Z", "MountPath": "/root/code/"}]}]},
  "volc": {"workspaces": [{"Id": "ws-demo", "Name": "demo", "resources": [
    {"Id": "r-1", "WorkspaceId": "ws-demo", "Name": "web-frontend", "Type": "Git",
     "Configuration": {"Git": {"Url": "$(repo web-frontend)", "UserName": "demo",
       "UserToken": "volc-demo-secret", "Password": "", "AccessKey": "", "SecretKey": "",
       "CloneDepth": 0}},
     "CreateTime": "2024-01-01T10:00:00+08:00", "UpdateTime": "2024-01-02T10:00:00+08:00",
     "Creator": {"AccountId": 1, "UserId": 0}}]}]},
  "codeup": {"organizations": [{"id": "org-demo",
    "namespaces": [{"id": 10, "name": "platform", "path": "platform", "fullPath": "org-demo/platform",
      "kind": "group", "nameWithNamespace": "org-demo/platform",
      "pathWithNamespace": "org-demo/platform", "parentId": 1, "visibility": "private",
      "webUrl": "https://codeup.example/org-demo/platform", "avatarUrl": ""}],
    "repositories": [
      {"id": 100, "name": "data-pipeline", "path": "data-pipeline",
       "pathWithNamespace": "org-demo/platform/data-pipeline", "namespaceId": 10,
       "description": "", "webUrl": "https://codeup.example/org-demo/platform/data-pipeline",
       "httpUrlToRepo": "$(repo data-pipeline)", "defaultBranch": "main",
       "createdAt": "2024-01-01T00:00:00.000+08:00", "lastActivityAt": "2024-05-01T00:00:00.000+08:00",
       "archived": false, "visibility": "private"},
      {"id": 101, "name": "infra", "path": "infra", "pathWithNamespace": "org-demo/infra",
       "namespaceId": 1, "description": "", "webUrl": "https://codeup.example/org-demo/infra",
       "httpUrlToRepo": "$(repo infra)", "defaultBranch": "main",
       "createdAt": "2024-02-01T00:00:00.000+08:00", "lastActivityAt": "2024-02-01T00:00:00.000+08:00",
       "archived": false, "visibility": "private"}]}]}
}
EOF

/usr/bin/python3 "$here/tests/emulator/emulator.py" --port 0 --data "$work/data.json" \
	>"$work/emulator.out" 2>"$work/emulator.err" &
emu_pid=$!
for _ in $(seq 100); do
	grep -q '^PORT ' "$work/emulator.out" 2>/dev/null && break
	sleep 0.1
done
port=$(sed -n 's/^PORT //p' "$work/emulator.out")
[ -n "$port" ] || { echo "the emulator did not start:" >&2; cat "$work/emulator.err" >&2; exit 1; }

umask 077
cat >"$work/config" <<EOF
[pai]
access_key_id     = testak
access_key_secret = testsecret
endpoint          = http://127.0.0.1:$port
workspaces        = 1001

[volc]
access_key = volcak
secret_key = volcsecret
endpoint   = http://127.0.0.1:$port
workspaces = ws-demo

[codeup]
token         = pt-testtoken
endpoint      = http://127.0.0.1:$port
organizations = org-demo
EOF

echo "The emulator of the three clouds listens on 127.0.0.1:$port."
# Every key that names a secret or a token is shown masked.
run "sed -E 's/^([a-z_]*(secret|token)[a-z_]* *= ).*/\\1******/' $work/config"
run "$bin -o config=$work/config $mnt"
cd "$mnt"
run "ls"
run "ls -l pai/1001"
run "cat pai/1001/dlc-examples/url pai/1001/dlc-examples/branch"
run "cat pai/1001/dlc-examples/meta.json"
run "find . -name url | sort"
run "grep -r --include=url -l 'repos' . | sort"
cd "$work"
# --branch only where the cloud records one; -- so that no URL is read as an option.
step 'for d in mnt/pai/1001/*/ mnt/codeup/org-demo/platform/*/; do b=$(cat "$d/branch" 2>/dev/null); git clone -q ${b:+--branch "$b"} -- "$(cat "$d/url")" "clones/$(basename "$d")"; done'
mkdir -p clones
for d in mnt/pai/1001/*/ mnt/codeup/org-demo/platform/*/; do
	b=$(cat "$d/branch" 2>/dev/null) || b=
	git clone -q ${b:+--branch "$b"} -- "$(cat "$d/url")" "clones/$(basename "$d")"
done
run "ls clones && head -1 clones/*/README.md"
run "fusermount3 -u $mnt"

cat <<'EOF'

That was the emulator. Against a real account, put your credentials in
~/.config/codesrcfs/config (mode 600; see README.md), without any endpoint line:

    [pai]
    access_key_id     = LTAI...
    access_key_secret = ...
    region            = cn-hangzhou

then: mkdir -p ~/src && build/codesrcfs ~/src && ls ~/src/pai
EOF
