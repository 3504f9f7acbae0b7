#!/bin/sh
# clone-all.sh: clone, or update, every repository under a path of a codesrcfs mount.
#
#   clone-all.sh [-j N] SOURCE DEST
#
# A repository is a directory of SOURCE that holds a `url` file, no sub-directory and
# no `meta.json` saying "kind": "group" (a Codeup group also has a `url`, its web page).
# SOURCE/a/b/repo is cloned into DEST/a/b/repo, on the branch named by its `branch`
# file when there is one. An existing clone is updated (git pull --ff-only, or git
# fetch when its HEAD follows no upstream), so a second run resumes an interrupted one.
# N clones run at once (default 4). Failures are listed at the end; the exit status is
# then 1, else 0.
set -u
prog=clone-all.sh

if [ "${1:-}" = --one ]; then
	# Worker: --one SOURCE DEST FAILFILE DIR
	src=$2 dest=$3 failfile=$4 d=$5
	if [ "$d" = "$src" ]; then rel=$(basename "$src"); else rel=${d#"$src"/}; fi
	out=$dest/$rel
	fail() { printf '%s: %s\n' "$rel" "$1" >>"$failfile"; exit 0; }
	url=$(cat "$d/url") || fail "cannot read url"
	[ -n "$url" ] || fail "empty url"
	branch=$(cat "$d/branch" 2>/dev/null) || branch=
	export GIT_TERMINAL_PROMPT=0
	if [ -e "$out/.git" ]; then
		if git -C "$out" rev-parse -q --verify '@{upstream}' >/dev/null 2>&1; then
			git -C "$out" pull -q --ff-only || fail "git pull --ff-only failed"
		else
			git -C "$out" fetch -q --all || fail "git fetch failed"
		fi
		echo "updated $rel"
	else
		# Clone beside the target, then rename: an interrupted clone is never mistaken
		# for a finished one.
		rm -rf "$out.clone-all-partial"
		mkdir -p "$(dirname "$out")" || fail "cannot create $(dirname "$out")"
		if [ -n "$branch" ]; then
			git clone -q --branch "$branch" -- "$url" "$out.clone-all-partial" \
				|| { rm -rf "$out.clone-all-partial"; fail "git clone --branch $branch failed"; }
		else
			git clone -q -- "$url" "$out.clone-all-partial" \
				|| { rm -rf "$out.clone-all-partial"; fail "git clone failed"; }
		fi
		mv "$out.clone-all-partial" "$out" || fail "cannot rename the clone into place"
		echo "cloned $rel"
	fi
	exit 0
fi

usage() { echo "usage: $prog [-j N] SOURCE DEST" >&2; exit 2; }
jobs=4
while getopts j:h opt; do
	case $opt in
	j) jobs=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
case $jobs in ''|*[!0-9]*|0) echo "$prog: -j wants a positive number" >&2; exit 2 ;; esac
src=${1%/}
dest=${2%/}
[ -n "$src" ] || src=/
[ -d "$src" ] || { echo "$prog: $src: not a directory" >&2; exit 2; }
mkdir -p "$dest" || exit 2

failfile=$(mktemp) || exit 2
trap 'rm -f "$failfile"' EXIT
trap 'exit 130' INT TERM

# Every directory holding a url file, no sub-directory and not a Codeup group,
# NUL-separated for xargs.
find "$src" -type f -name url -print | while IFS= read -r f; do
	d=$(dirname "$f")
	[ -z "$(find "$d" -mindepth 1 -maxdepth 1 -type d -print)" ] || continue
	! grep -qs '^ *"kind": *"group"' "$d/meta.json" || continue
	printf '%s\0' "$d"
done | xargs -0 -r -n 1 -P "$jobs" sh "$0" --one "$src" "$dest" "$failfile"

if [ -s "$failfile" ]; then
	echo "$prog: $(wc -l <"$failfile" | tr -d " ") failed:" >&2
	sort "$failfile" >&2
	exit 1
fi
exit 0
