#!/usr/bin/env bash
# Builds the virtual ARM router: firmware images with the real cross-built fwguard inside,
# U-Boot's default environment (packaging/uboot/ab-boot.env) and the virtio disk.
#
#   tests/vrouter/build.sh OUT_DIR
#
# Needs: tests/vrouter/setup.sh, and the static armv7 fwguard ($FWGUARD_ARMV7, default the
# router build of cross/build.sh) and the host fwguard-index ($FWGUARD_INDEX, default
# target/debug/fwguard-index). Debian armhf packages are downloaded once into $VROUTER_CACHE
# (default .cache/vrouter) and reused.
#
# OUT_DIR gets:
#   flash1.img   64 MiB pflash bank 1: U-Boot's default env, which holds the A/B boot script
#   disk.img     34 MiB virtio disk: p1 live env (raw, 16 KiB) | p2 slot A (firmware 1.0)
#                | p3 slot B (empty); no partition both slots mount, as on a WRT32X
#   www/images/fw-VERSION.img   firmware images: a FIT (kernel, initramfs), as the slot holds it
#   www/images/root-VERSION.squashfs   each firmware's root file system (its identity, its
#                fwguard and config): the release's part for target rootfs, written by fwguard
#                as volume rootfs of a fresh UBI on the slot's NAND partition
#   nand.img     32 MiB flash file: the NAND's firmware partitions (mtd0 slot A, mtd1 slot B)
#                page by page (see guest/vrouter-nand.c); A's holds a UBI with the owner's
#                settings in rootfs_data
#   keys/vrouter.{sec,pub}      the index signing key, made for this build
# Each firmware's initramfs holds the kernel's nandsim, UBI, UBIFS and squashfs modules and the
# board's UBI tool (guest/vrouter-ubi.c, built static with arm-linux-gnueabihf-gcc from
# cross/setup.sh); it mounts the root from the slot's UBI.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:?usage: build.sh OUT_DIR}
CACHE=${VROUTER_CACHE:-$ROOT/.cache/vrouter}
FWGUARD_ARMV7=${FWGUARD_ARMV7:-$ROOT/target/armv7-unknown-linux-musleabihf/release/fwguard}
FWGUARD_INDEX=${FWGUARD_INDEX:-$ROOT/target/debug/fwguard-index}

for tool in arm-linux-gnueabihf-gcc qemu-system-arm mkimage mkenvimage dtc cpio fw_printenv mkfs.ubifs ubinize mksquashfs busybox python3; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing; run tests/vrouter/setup.sh" >&2; exit 1; }
done
for f in "$FWGUARD_ARMV7" "$FWGUARD_INDEX" /usr/lib/u-boot/qemu_arm/u-boot.bin; do
    [ -f "$f" ] || { echo "build.sh: $f is missing (cross/build.sh armv7; cargo build --bin fwguard-index; setup.sh)" >&2; exit 1; }
done
file_arch=$(od -An -j18 -N2 -tu2 "$FWGUARD_ARMV7" | tr -d ' ')
[ "$file_arch" = 40 ] || { echo "build.sh: $FWGUARD_ARMV7 is not an ARM binary" >&2; exit 1; }

rm -rf "$OUT"; mkdir -p "$OUT"/{www/images,keys,fit} "$CACHE"
OUT=$(cd "$OUT" && pwd)

# ---- 1. Debian armhf packages: the kernel (with its modules) and a static busybox
KVER=${KVER:-$(apt-cache depends linux-image-armmp:armhf | sed -n 's/.*Depends: linux-image-\([^:]*\).*/\1/p' | head -1)}
[ -n "$KVER" ] || { echo "build.sh: no linux-image-armmp:armhf in the package lists; run setup.sh" >&2; exit 1; }
X=$CACHE/x-$KVER
if [ ! -f "$X/.done" ]; then
    rm -rf "$X" && mkdir -p "$CACHE/debs" "$X"
    (cd "$CACHE/debs" && for i in 1 2 3; do apt-get download "linux-image-$KVER:armhf" busybox-static:armhf && break; sleep 5; done)
    for d in "$CACHE/debs/linux-image-$KVER"_*_armhf.deb "$CACHE"/debs/busybox-static_*_armhf.deb; do dpkg-deb -x "$d" "$X"; done
    touch "$X/.done"
fi
cp "$X/boot/vmlinuz-$KVER" "$OUT/fit/zImage"
MODS=$X/lib/modules/$KVER/kernel

# ---- 2. the signing key the index is signed with (the firmware trusts its public half)
"$FWGUARD_INDEX" keygen -s "$OUT/keys/vrouter.sec" -p "$OUT/keys/vrouter.pub" --comment vrouter >/dev/null

# ---- 3. one firmware per version: its root file system (squashfs: what it is, its fwguard),
# and its boot image: initramfs -> FIT (what U-Boot bootm's from the slot)
# $1 version, $2 behaviour (good | nowan | panic | hang; see guest/init)
make_fw() {
    local ver=$1 beh=$2 r=$OUT/root rr=$OUT/rootfs
    rm -rf "$r" "$rr"
    mkdir -p "$rr"/{etc/vrouter,etc/fwguard,usr/sbin}
    echo "$ver" > "$rr/etc/vrouter/version"
    echo "$beh" > "$rr/etc/vrouter/behaviour"
    install -m 755 "$FWGUARD_ARMV7" "$rr/usr/sbin/fwguard"
    install -m 644 "$HERE/guest/config.toml" "$rr/etc/fwguard/config.toml"
    install -m 644 "$OUT/keys/vrouter.pub" "$rr/etc/fwguard/vrouter.pub"
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)} \
        mksquashfs "$rr" "$OUT/www/images/root-$ver.squashfs" -comp gzip -all-root -noappend -quiet
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules,proc,sys,dev,run,tmp,rom}
    cp "$X/bin/busybox" "$r/bin/"
    for m in drivers/virtio/virtio_mmio drivers/block/virtio_blk net/core/failover drivers/net/net_failover \
             drivers/net/virtio_net drivers/watchdog/softdog lib/crc16 lib/zstd/zstd_compress crypto/zstd crypto/deflate \
             drivers/mtd/ubi/ubi fs/ubifs/ubifs fs/squashfs/squashfs drivers/mtd/nand/raw/nandsim; do
        cp "$MODS/$m.ko" "$r/lib/modules/"
    done
    mknod -m 600 "$r/dev/console" c 5 1
    install -m 755 "$HERE/guest/init" "$r/init"
    install -m 755 "$HERE/guest/vrouter-reboot" "$r/usr/sbin/vrouter-reboot"
    install -m 755 "$OUT/fit/vrouter-ubi" "$r/usr/sbin/vrouter-ubi"
    install -m 755 "$OUT/fit/vrouter-nand" "$r/usr/sbin/vrouter-nand"
    install -m 755 "$HERE/guest/vrouter-flash-file" "$r/usr/sbin/vrouter-flash-file"
    install -m 755 "$HERE/guest/vrouter-cut" "$r/usr/sbin/vrouter-cut"
    install -m 755 "$HERE/guest/vrouter-state" "$r/usr/sbin/vrouter-state"
    # fwguard and its config are the root's (/rom), as on a firmware whose root is on NAND.
    ln -s /rom/usr/sbin/fwguard "$r/usr/sbin/fwguard"
    ln -s /rom/etc/fwguard "$r/etc/fwguard"
    install -m 644 "$HERE/guest/fw_env.config" "$r/etc/fw_env.config"
    (cd "$r" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -6 -n) > "$OUT/fit/initrd-$ver.cpio.gz"
    cat > "$OUT/fit/fw-$ver.its" <<ITS
/dts-v1/;
/ {
  description = "vrouter firmware $ver";
  #address-cells = <1>;
  images {
    kernel-1 {
      description = "Linux $KVER";
      data = /incbin/("zImage");
      type = "kernel"; arch = "arm"; os = "linux"; compression = "none";
      load = <0x40400000>; entry = <0x40400000>;
      hash-1 { algo = "sha256"; };
    };
    ramdisk-1 {
      description = "initramfs $ver";
      data = /incbin/("initrd-$ver.cpio.gz");
      type = "ramdisk"; arch = "arm"; os = "linux"; compression = "none";
      load = <0x44000000>; entry = <0x44000000>;
      hash-1 { algo = "sha256"; };
    };
  };
  configurations {
    default = "conf-1";
    conf-1 { description = "$ver"; kernel = "kernel-1"; ramdisk = "ramdisk-1"; };
  };
};
ITS
    (cd "$OUT/fit" && SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)} mkimage -q -f "fw-$ver.its" "fw-$ver.itb")
    "$FWGUARD_INDEX" image "$OUT/fit/fw-$ver.itb" >/dev/null
    mv "$OUT/fit/fw-$ver.itb" "$OUT/www/images/fw-$ver.img"
    rm -rf "$r" "$rr"
}
# The board's UBI tool (its busybox has none), static for armhf.
arm-linux-gnueabihf-gcc -static -O2 -Wall -o "$OUT/fit/vrouter-ubi" "$HERE/guest/vrouter-ubi.c"
arm-linux-gnueabihf-gcc -static -O2 -Wall -o "$OUT/fit/vrouter-nand" "$HERE/guest/vrouter-nand.c"
make_fw 1.0 good
make_fw 2.0 good
make_fw 3.0 nowan
make_fw 4.0 panic
make_fw 5.0 hang
echo ok > "$OUT/www/ping"
rm -f "$OUT"/fit/*.cpio.gz "$OUT"/fit/zImage

# ---- 4. pflash bank 1: U-Boot's default env = the project's documented A/B script
grep -v '^#' "$ROOT/packaging/uboot/ab-boot.env" | grep -v '^$' > "$OUT/fit/ab-boot.clean"
mkenvimage -s 0x40000 -o "$OUT/fit/uboot-env.bin" "$OUT/fit/ab-boot.clean"
# ---- 5. the live env (partition 1)
printf 'boot_slot=A\nbootcount=0\nbootlimit=3\nupgrade_available=0\n' > "$OUT/fit/ab-state.txt"
mkenvimage -s 0x4000 -o "$OUT/fit/ab-env.bin" "$OUT/fit/ab-state.txt"
# ---- 6. the NAND as the board leaves the factory, then configured by its owner: slot A's
# partition holds a UBI (made by ubinize, as a vendor's flasher would write it): firmware
# 1.0's root in volume rootfs, and the rootfs_data overlay holding the owner's settings.
# The WAN address and gateway are only here:
# a firmware that boots without them has no WAN. Slot B's partition is erased.
mkdir -p "$OUT/fit/owner/etc/config"
printf "config interface 'wan'\n\toption proto 'static'\n\toption ipaddr '10.0.2.15'\n\toption netmask '255.255.255.0'\n\toption gateway '10.0.2.2'\n" \
    > "$OUT/fit/owner/etc/config/network"
printf "config system\n\toption hostname 'owners-router'\n" > "$OUT/fit/owner/etc/config/system"
# 2 KiB pages, 512-byte subpages (the VID header's offset), 128 KiB erase blocks: 126 KiB LEBs.
mkfs.ubifs -r "$OUT/fit/owner" -m 2048 -e 129024 -c 120 -x zlib -o "$OUT/fit/rootfs_data.ubifs"
printf '[rootfs]\nmode=ubi\nimage=%s\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\n\n[rootfs_data]\nmode=ubi\nimage=%s\nvol_id=1\nvol_type=dynamic\nvol_name=rootfs_data\nvol_flags=autoresize\n' \
    "$OUT/www/images/root-1.0.squashfs" "$OUT/fit/rootfs_data.ubifs" > "$OUT/fit/ubinize.cfg"
ubinize -o "$OUT/fit/slot-a.ubi" -p 128KiB -m 2048 -s 512 "$OUT/fit/ubinize.cfg"
python3 "$HERE/disk.py" "$OUT" "$OUT/www/images/fw-1.0.img" "$OUT/fit/slot-a.ubi"
rm -rf "$OUT/fit"
ls -l "$OUT/www/images"
echo "vrouter build OK: $OUT (kernel $KVER)"
