#!/bin/sh
# Install the Debian packages `make test-vm` needs (a real guest under
# qemu:///system), when they are missing.  As root it runs apt-get;
# otherwise it says what to install and fails.
#
#   qemu-system-x86 qemu-utils  QEMU (TCG or KVM) and qemu-img
#   libvirt-daemon-system       libvirtd, virtlogd, the qemu driver
#   mmdebstrap                  the guest's root file system from the archive
#   e2fsprogs fdisk dosfstools  the disk image without mounting anything
#   mtools syslinux syslinux-common
set -eu
packages="qemu-system-x86 qemu-utils libvirt-daemon-system mmdebstrap e2fsprogs fdisk dosfstools mtools syslinux syslinux-common"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "vm-deps: no apt-get here; install the equivalents of:$missing" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "vm-deps: missing Debian packages:$missing" >&2
    echo "vm-deps: run: sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "vm-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
