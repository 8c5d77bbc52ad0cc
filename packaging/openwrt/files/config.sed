# packaging/config.toml as the OpenWrt package installs it (packaging/openwrt/Makefile,
# cross/package-ipk.sh). The runtime directory must be on a tmpfs: OpenWrt may have no /run
# (`mkdir -p /run/fwguard` would create it on the overlay, on flash, and the health record
# rewritten every round would wear it), while /var is a symlink to /tmp, a tmpfs.
s|^runtime_dir = "/run/fwguard"$|runtime_dir = "/var/run/fwguard"|
# The state must survive a reboot: /var is tmpfs on OpenWrt, so it lives under /etc, on the
# running firmware's overlay. That suits the linksys profile (its slots share nothing but
# the U-Boot env); on a board with a data partition both slots mount, set state_dir there
# (`fwguard doctor` refuses the overlay for the other profiles).
s|^state_dir = "/var/lib/fwguard"$|state_dir = "/etc/fwguard/state"|
