#!/usr/bin/env bash
# Assembles an OpenWrt .ipk from a built fwguard binary, without the OpenWrt SDK:
# an ar archive of debian-binary, control.tar.gz and data.tar.gz (what opkg installs).
#
#   cross/package-ipk.sh BINARY [ARCH [OUTDIR]]
#   e.g. cross/package-ipk.sh target/armv7-unknown-linux-musleabihf/release/fwguard arm_cortex-a9_vfpv3-d16
set -euo pipefail
bin=$(realpath "$1")
arch=${2:-arm_cortex-a9_vfpv3-d16}
cd "$(dirname "$0")/.."
out=$(realpath -m "${3:-target/packages}")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=$work/data ctrl=$work/control
install -D -m 0755 "$bin" "$data/usr/sbin/fwguard"
install -D -m 0755 packaging/openwrt/files/fwguard.init "$data/etc/init.d/fwguard"
# The example config with an OpenWrt runtime directory (/var/run: tmpfs; see the sed script).
install -d "$data/etc/fwguard"
sed -f packaging/openwrt/files/config.sed packaging/config.toml > "$data/etc/fwguard/config.toml"
chmod 0644 "$data/etc/fwguard/config.toml"
install -D -m 0755 packaging/openwrt/files/fwguard.uci-defaults "$data/etc/uci-defaults/90-fwguard"
install -D -m 0644 packaging/openwrt/files/fwguard.keep "$data/lib/upgrade/keep.d/fwguard"
# ubus through rpcd: the exec plugin and its ACL (read-only and mutating methods apart).
install -D -m 0755 packaging/openwrt/files/fwguard.rpcd "$data/usr/libexec/rpcd/fwguard"
install -D -m 0644 packaging/openwrt/files/fwguard.acl.json "$data/usr/share/rpcd/acl.d/fwguard.json"
mkdir -p "$ctrl"
cat > "$ctrl/control" <<CONTROL
Package: fwguard
Version: $version-1
Depends: libc, ca-bundle
License: Apache-2.0
Section: utils
Architecture: $arch
Installed-Size: $(du -sb "$data" | cut -f1)
Description: Firmware update and rollback agent (A/B slots, trial boots, health checks)
CONTROL
echo /etc/fwguard/config.toml > "$ctrl/conffiles"
cat > "$ctrl/postinst" <<'SCRIPT'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
[ -x /etc/uci-defaults/90-fwguard ] && /etc/uci-defaults/90-fwguard && rm -f /etc/uci-defaults/90-fwguard
/etc/init.d/fwguard enable
/etc/init.d/fwguard restart
exit 0
SCRIPT
cat > "$ctrl/prerm" <<'SCRIPT'
#!/bin/sh
[ -n "${IPKG_INSTROOT}" ] && exit 0
/etc/init.d/fwguard stop
/etc/init.d/fwguard disable
exit 0
SCRIPT
chmod 0755 "$ctrl/postinst" "$ctrl/prerm"
echo 2.0 > "$work/debian-binary"
tarit() { tar --owner=0 --group=0 --numeric-owner --sort=name -czf "$1" -C "$2" .; }
tarit "$work/data.tar.gz" "$data"
tarit "$work/control.tar.gz" "$ctrl"
mkdir -p "$out"
ipk=$out/fwguard_${version}-1_${arch}.ipk
rm -f "$ipk"
(cd "$work" && ar rc "$ipk" debian-binary control.tar.gz data.tar.gz)
echo "$ipk"
