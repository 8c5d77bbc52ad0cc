#!/usr/bin/env bash
# Installs what cross-building fwguard for routers needs, idempotently, on Debian:
#   - cross C compilers (ring's C/asm) used as linkers, and qemu-user to run ARM binaries
#   - musl for armhf, unpacked into .cross/armv7-musl (rustup has no prebuilt std for
#     armv7-unknown-linux-musleabihf, so std is built from source with -Zbuild-std)
#   - rustup targets for aarch64 and x86_64 musl, and rust-src for build-std
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo

packages=(gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu libc6-dev-armhf-cross qemu-user-static musl-tools)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
need_update=
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
    $SUDO dpkg --add-architecture armhf
    need_update=1
fi
if ((${#missing[@]})) || [ -n "$need_update" ]; then
    $SUDO apt-get update -qq || echo "warning: apt-get update reported errors (a mirror in sync?); installing from the lists it has"
fi
if ((${#missing[@]})); then
    echo "cross/setup.sh: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

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
