# packaging/config.toml as the OpenWrt package installs it (packaging/openwrt/Makefile,
# cross/package-ipk.sh). The runtime directory must be on a tmpfs: OpenWrt may have no /run
# (`mkdir -p /run/fwguard` would create it on the overlay, on flash, and the health record
# rewritten every round would wear it), while /var is a symlink to /tmp, a tmpfs.
s|^runtime_dir = "/run/fwguard"$|runtime_dir = "/var/run/fwguard"|
