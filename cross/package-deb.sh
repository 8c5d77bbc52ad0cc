#!/usr/bin/env bash
# Builds a Debian package (systemd units, config, binary) from a built fwguard binary.
#
#   cross/package-deb.sh BINARY [DEBIAN-ARCH [OUTDIR]]
#   e.g. cross/package-deb.sh target/aarch64-unknown-linux-musl/release/fwguard arm64
set -euo pipefail
bin=$(realpath "$1")
arch=${2:-amd64}
cd "$(dirname "$0")/.."
out=$(realpath -m "${3:-target/packages}")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "$bin" "$stage/usr/sbin/fwguard"
install -D -m 0644 packaging/systemd/fwguard.service "$stage/lib/systemd/system/fwguard.service"
install -D -m 0644 packaging/systemd/fwguard-assess.service "$stage/lib/systemd/system/fwguard-assess.service"
install -D -m 0644 packaging/config.toml "$stage/etc/fwguard/config.toml"
install -D -m 0644 README.md "$stage/usr/share/doc/fwguard/README.md"
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: fwguard
Version: $version-1
Architecture: $arch
Maintainer: fwguard developers <fwguard@localhost>
Depends: ca-certificates
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Description: firmware update and rollback agent for A/B routers and appliances
 Writes new firmware only to the inactive slot, verifies it, boots it on trial and
 commits it after health checks, or rolls back to the previous slot by itself.
CONTROL
echo /etc/fwguard/config.toml > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable fwguard-assess.service fwguard.service
    systemctl restart fwguard.service || true
fi
SCRIPT
cat > "$stage/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop fwguard.service || true
    systemctl disable fwguard-assess.service fwguard.service || true
fi
SCRIPT
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"
mkdir -p "$out"
deb=$out/fwguard_${version}-1_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "$deb"
