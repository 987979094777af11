#!/bin/sh
# Build the small bootable Debian guest image `make test-vm` boots.
#
#   sh scripts/build-test-image.sh CACHE_DIR
#
# Writes CACHE_DIR/debian-test-<recipe hash>.qcow2 and, next to it,
# root-password (mode 0600, a random password for the console login
# method; never printed).  The hash is this script's own sha256, so the
# image is rebuilt only when the recipe changes; an existing image is kept.
# Prints the image's path on stdout.
#
# Everything comes from the Debian archive apt already uses (mmdebstrap);
# no mounts or loop devices are needed: the root file system is made with
# `mke2fs -d`, the boot partition is FAT written with mtools and made
# bootable with syslinux, both placed into a partitioned raw disk with dd.
#
# The guest: Debian 12 with the cloud kernel, systemd, systemd-networkd
# (DHCP on the first NIC), openssh-server (no motd per session), cloud-init
# (NoCloud only, network left to networkd, no locale generation: the image
# has no locales) and a getty on the serial console ttyS0.
set -eu

cache=${1:?usage: build-test-image.sh CACHE_DIR}
suite=${SUITE:-bookworm}
here=$(cd "$(dirname "$0")" && pwd)
recipe=$(sha256sum "$here/build-test-image.sh" | cut -c1-12)
image="$cache/debian-test-$recipe.qcow2"
password_file="$cache/root-password"

if [ -s "$image" ] && [ -s "$password_file" ]; then
    echo "$image"
    exit 0
fi
for tool in mmdebstrap mke2fs mkfs.fat mcopy syslinux sfdisk qemu-img; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "build-test-image: $tool is missing; run: sh scripts/vm-deps.sh" >&2
        exit 1
    }
done
[ "$(id -u)" -eq 0 ] || { echo "build-test-image: run as root (mmdebstrap, mke2fs -d ownership)" >&2; exit 1; }

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# A random root password, only ever in this file (read by the test).
umask 077
if [ ! -s "$password_file" ]; then
    head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$password_file.part"
    mv "$password_file.part" "$password_file"
fi
umask 022

packages="systemd-sysv,udev,dbus,linux-image-cloud-amd64,openssh-server,cloud-init,netbase,iproute2"
# The customize hook gets the root file system as $1.
cat > "$work/customize.sh" <<'EOF'
set -eu
root=$1
echo dojobber-guest > "$root/etc/hostname"
printf '/dev/vda2 / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n' > "$root/etc/systemd/network/80-dhcp.network"
chroot "$root" systemctl enable systemd-networkd.service
chroot "$root" systemctl enable serial-getty@ttyS0.service
# The getty waits for /dev/ttyS0 as long as it takes: systemd gives a device
# 90 s by default, and a guest emulated on a busy host (TCG with a fifth of
# a core) announces ttyS0 later than that; the getty then fails ("Dependency
# failed for Serial Getty on ttyS0") and the console only ever echoes Enter.
mkdir -p "$root/etc/systemd/system/dev-ttyS0.device.d"
printf '[Unit]\nJobRunningTimeoutSec=infinity\n' \
    > "$root/etc/systemd/system/dev-ttyS0.device.d/90-wait.conf"
mkdir -p "$root/etc/cloud/cloud.cfg.d"
cat > "$root/etc/cloud/cloud.cfg.d/90-dojobber-test.cfg" <<'CFG'
datasource_list: [NoCloud, None]
network: {config: disabled}
growpart: {mode: "off"}
resize_rootfs: false
locale: false
CFG
# No dynamic motd per SSH session (run-parts, uname): under TCG it cost
# each connection's first command about 0.5-0.9 s.
sed -i '/pam_motd\.so/s/^session/#session/' "$root/etc/pam.d/sshd"
# Nothing of the build host's identity in the image.
rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
touch "$root/etc/machine-id"
rm -rf "$root/var/cache/apt"/*.bin "$root/var/lib/apt/lists"/*_Packages
EOF

echo "build-test-image: mmdebstrap $suite (this takes a few minutes)" >&2
mmdebstrap --quiet --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="sh $work/customize.sh \"\$1\"" \
    "$suite" "$work/rootfs"

# The root password, from the file (never on a command line or in output).
printf 'root:%s\n' "$(cat "$password_file")" | chroot "$work/rootfs" chpasswd

kernel=$(ls "$work"/rootfs/boot/vmlinuz-* | sort | tail -n 1)
initrd=$(ls "$work"/rootfs/boot/initrd.img-* | sort | tail -n 1)

# Partitions: 1 MiB gap, FAT boot (kernel, initrd, syslinux), ext4 root.
boot_mib=96
used_mib=$(du -sm "$work/rootfs" | cut -f1)
root_mib=$((used_mib + used_mib / 4 + 256))
mkfs.fat -C -h 2048 -n BOOT "$work/boot.img" $((boot_mib * 1024)) >/dev/null
mcopy -i "$work/boot.img" "$kernel" ::/vmlinuz
mcopy -i "$work/boot.img" "$initrd" ::/initrd.img
cat > "$work/syslinux.cfg" <<'EOF'
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=/dev/vda2 rw console=ttyS0,115200 quiet
EOF
mcopy -i "$work/boot.img" "$work/syslinux.cfg" ::/syslinux.cfg
rm -rf "$work/rootfs/boot"/vmlinuz-* "$work/rootfs/boot"/initrd.img-*
mke2fs -q -t ext4 -L root -d "$work/rootfs" "$work/root.img" "${root_mib}M"

disk="$work/disk.raw"
truncate -s $((1 + boot_mib + root_mib))M "$disk"
printf 'label: dos\nstart=2048, size=%d, type=c, bootable\nstart=%d, type=83\n' \
    $((boot_mib * 2048)) $((2048 + boot_mib * 2048)) | sfdisk -q "$disk"
dd if="$work/boot.img" of="$disk" bs=1M seek=1 conv=notrunc status=none
dd if="$work/root.img" of="$disk" bs=1M seek=$((1 + boot_mib)) conv=notrunc status=none
syslinux --offset $((2048 * 512)) --install "$disk"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none

qemu-img convert -O qcow2 "$disk" "$image.part"
mv "$image.part" "$image"
# Older images of other recipes are no longer used.
for old in "$cache"/debian-test-*.qcow2; do
    [ "$old" = "$image" ] || rm -f "$old"
done
echo "$image"
