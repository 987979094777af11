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
exec sh "$(dirname "$0")/apt-install.sh" vm-deps 1 \
    qemu-system-x86 qemu-utils libvirt-daemon-system mmdebstrap e2fsprogs fdisk dosfstools \
    mtools syslinux syslinux-common
