#!/bin/sh
# Install the Debian packages named as arguments when any is missing.
set -e
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "codesrcfs: missing Debian packages:$missing" >&2
	echo "codesrcfs: run as root, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Servers the tests start themselves (tinyproxy, nghttpx) must not start as services:
# invoke-rc.d and deb-systemd-invoke ask policy-rc.d, and 101 means "do not start".
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
# ... nor at the next boot.
for p in $missing; do
	for f in $(dpkg -L "$p" 2>/dev/null | grep -E '^/lib/systemd/system/[^/@]+\.service$|^/etc/init\.d/'); do
		case "$f" in
		*.service) systemctl disable "${f##*/}" >/dev/null 2>&1 || true ;;
		*) update-rc.d "${f##*/}" disable >/dev/null 2>&1 || true ;;
		esac
	done
done
