#!/usr/bin/env bash
# Installs (idempotently) what the virtual router needs on a Debian 12 host, as root or with
# sudo: QEMU for 32-bit ARM, Debian's qemu_arm U-Boot, the U-Boot and FIT tools, and the armhf
# package lists (the guest kernel and busybox are armhf Debian packages, fetched by build.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
#   qemu-system-arm  the virtual board           u-boot-qemu        U-Boot for it (qemu_arm)
#   u-boot-tools     mkimage (FIT), mkenvimage   device-tree-compiler  mkimage -f needs dtc
#   cpio             the initramfs               busybox-static     host `nc` relaying guestfwd
#   mtd-utils        ubinize, mkfs.ubifs (the factory NAND)    squashfs-tools  mksquashfs (roots)
#   libubootenv-tool host fw_printenv / fw_setenv on disk.img
packages=(qemu-system-arm u-boot-qemu u-boot-tools device-tree-compiler cpio busybox-static
          mtd-utils squashfs-tools libubootenv-tool)
command -v python3 >/dev/null || packages+=(python3)
bash tests/apt-install.sh --armhf "${packages[@]}"
