#!/bin/sh
# clone-all.sh: clone, or update, every repository under a path of a codesrcfs mount.
#
#   clone-all.sh [-j N] SOURCE DEST
#
# Each directory's .index.jsonl (docs/design.md §1) is read once, with jq, instead of a
# url and a branch file per repository: workspaces, organizations and groups are walked
# into; an entry of kind code_source or repository is cloned when it has a url, skipped
# when it has none. A Codeup repository whose listing lacked its clone URL or branch (the
# index marks it "incomplete") is read from its url and branch files, which fetch them.
# A SOURCE without an index is cloned as one repository when it holds a url file; else
# its sub-directories are walked (the mount's root). SOURCE/a/b/repo is cloned into
# DEST/a/b/repo, with --branch only where a branch is known (else git takes the remote's
# default). An existing clone is updated (git pull --ff-only, or git fetch when its HEAD
# follows no upstream), so a second run resumes an interrupted one. N clones run at once
# (default 4). Failures are listed at the end; the exit status is then 1, else 0.
set -u
prog=clone-all.sh

if [ "${1:-}" = --one ]; then
	# Worker: --one DEST FAILFILE REL URL BRANCH DIR; a DIR says to read its url and
	# branch files instead.
	dest=$2 failfile=$3 rel=$4 url=$5 branch=$6 d=$7
	out=$dest/$rel
	fail() { printf '%s: %s\n' "$rel" "$1" >>"$failfile"; exit 0; }
	if [ -n "$d" ]; then
		[ -f "$d/url" ] || exit 0 # no usable clone URL: skipped, as the index would
		url=$(cat "$d/url") || fail "cannot read url"
		branch=$(cat "$d/branch" 2>/dev/null) || branch=
	fi
	[ -n "$url" ] || fail "empty url"
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
command -v jq >/dev/null || { echo "$prog: needs jq (apt-get install jq)" >&2; exit 2; }
mkdir -p "$dest" || exit 2

failfile=$(mktemp) || exit 2
trap 'rm -f "$failfile"' EXIT
trap 'exit 130' INT TERM

# The repositories below directory $1, whose path under SOURCE is $2 (empty for SOURCE),
# as NUL-separated REL URL BRANCH DIR for the workers. Names hold no newline (control
# bytes become _ in the tree), so one name a line is safe for the containers.
walk() {
	if [ -f "$1/.index.jsonl" ]; then
		jq -j --arg pre "${2:+$2/}" --arg dir "$1/" '
			select(.kind == "code_source" or .kind == "repository")
			| select(.url or .incomplete)
			| "\($pre)\(.name)\u0000\(.url // "")\u0000\(.branch // "")\u0000"
			  + (if .incomplete then $dir + .name else "" end) + "\u0000"' \
			"$1/.index.jsonl" || echo "${2:-.}: cannot read .index.jsonl" >>"$failfile"
		jq -r 'select(.kind == "workspace" or .kind == "organization" or .kind == "group")
			| .name' "$1/.index.jsonl" 2>/dev/null |
			while IFS= read -r n; do walk "$1/$n" "${2:+$2/}$n"; done
	elif [ -f "$1/url" ]; then
		printf '%s\0\0\0%s\0' "${2:-$(basename "$1")}" "$1"
	else
		for sub in "$1"/*/; do
			[ -d "$sub" ] || continue
			sub=${sub%/}
			walk "$sub" "${2:+$2/}${sub##*/}"
		done
	fi
}

walk "$src" "" | xargs -0 -r -n 4 -P "$jobs" sh "$0" --one "$dest" "$failfile"

if [ -s "$failfile" ]; then
	echo "$prog: $(wc -l <"$failfile" | tr -d " ") failed:" >&2
	sort "$failfile" >&2
	exit 1
fi
exit 0
