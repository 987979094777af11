#!/bin/sh
# Install the Debian packages the test suite needs, when they are missing.
# As root it runs apt-get; otherwise it says what to install and goes on
# (tests that need a missing program then fail with a message naming it).
set -eu
packages="graphviz libvirt-dev pkg-config openssh-server openssh-client xz-utils curl postgresql chromium qemu-utils"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: no apt-get here; install the equivalents of:$missing" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages:$missing" >&2
    echo "system-deps: run: sudo apt-get install -y$missing" >&2
    exit 0
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
