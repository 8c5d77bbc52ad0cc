#!/usr/bin/env bash
# Installs what cross-building fwguard for routers needs, idempotently, on Debian:
#   - cross C compilers (ring's C/asm) used as linkers, and qemu-user to run ARM binaries
#   - musl for armhf, unpacked into .cross/armv7-musl (rustup has no prebuilt std for
#     armv7-unknown-linux-musleabihf, so std is built from source with -Zbuild-std)
#   - rustup targets for aarch64 and x86_64 musl, and rust-src for build-std
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/apt-install.sh --armhf gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu libc6-dev-armhf-cross \
    qemu-user-static musl-tools

sysroot=.cross/armv7-musl/lib
if [ ! -f "$sysroot/libc.a" ]; then
    echo "cross/setup.sh: unpacking musl for armhf into $sysroot"
    gcclib=$(dirname "$(arm-linux-gnueabihf-gcc -print-libgcc-file-name)")
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get -o APT::Sandbox::User=root download musl-dev:armhf musl:armhf >/dev/null)
    for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$tmp/root"; done
    mkdir -p "$sysroot"
    cp "$tmp"/root/usr/lib/arm-linux-musleabihf/*.o "$tmp"/root/usr/lib/arm-linux-musleabihf/*.a "$sysroot/"
    cp "$gcclib"/crtbegin.o "$gcclib"/crtend.o "$gcclib"/crtbeginS.o "$gcclib"/crtendS.o "$sysroot/"
    # std's musl `unwind` crate links -lunwind; libgcc's EH unwinder serves.
    cp "$gcclib/libgcc_eh.a" "$sysroot/libunwind.a"
    rm -rf "$tmp"
fi

installed=$(rustup target list --installed)
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
done
rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
echo "cross/setup.sh: ready"
