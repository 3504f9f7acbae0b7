#!/bin/sh
# build-deb.sh VERSION OUTDIR: the Debian package, built by dpkg-buildpackage from a copy
# of this tree, so that the tree keeps its build/ (which `debian/rules clean` removes)
# and nothing is written beside it. OUTDIR receives codesrcfs_VERSION_ARCH.deb, its
# -dbgsym package, .buildinfo and .changes, and lintian.txt; lintian fails the build on
# an error. VERSION is the Makefile's and must be debian/changelog's too.
set -eu
prog=build-deb.sh
[ $# -eq 2 ] || { echo "usage: $prog VERSION OUTDIR" >&2; exit 2; }
version=$1
cd "$(dirname "$0")/.."
mkdir -p "$2"
out=$(cd "$2" && pwd)

changelog=$(dpkg-parsechangelog -S Version)
if [ "$changelog" != "$version" ]; then
	echo "$prog: the Makefile says $version, debian/changelog $changelog" >&2
	exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

rm -rf "$out/src" "$out"/codesrcfs[_-]* "$out/lintian.txt"
mkdir "$out/src"
tar --exclude=./build --exclude-vcs --exclude=__pycache__ -cf - . | tar -xf - -C "$out/src"
(cd "$out/src" && dpkg-buildpackage --no-sign -b -J)
rm -rf "$out/src"

changes=$out/codesrcfs_${version}_$arch.changes
lintian --fail-on error "$changes" >"$out/lintian.txt" 2>&1 || status=$?
cat "$out/lintian.txt"
if [ "${status:-0}" != 0 ]; then
	echo "$prog: lintian reports errors (exit status $status)" >&2
	exit 1
fi
echo "$out/codesrcfs_${version}_$arch.deb"
