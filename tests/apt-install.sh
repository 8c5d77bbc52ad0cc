#!/usr/bin/env bash
# Installs Debian packages that are not installed yet (idempotent; as root or with sudo).
#   tests/apt-install.sh [--armhf] PACKAGE...
# --armhf also enables the armhf architecture and makes sure its package lists are there
# (for `apt-get download PKG:armhf`). A failing `apt-get update` (a mirror in sync) is only a
# warning; a package that cannot be installed is an error.
set -euo pipefail
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
armhf=
if [ "${1:-}" = --armhf ]; then armhf=1; shift; fi
need_update=
if [ -n "$armhf" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx armhf; then
        $SUDO dpkg --add-architecture armhf
        need_update=1
    fi
    apt-cache show busybox-static:armhf >/dev/null 2>&1 || need_update=1
fi
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ -n "$need_update" ] || ((${#missing[@]})); then
    $SUDO apt-get update -qq || echo "warning: apt-get update reported errors (a mirror in sync?); using the lists it has"
fi
if ((${#missing[@]})); then
    echo "apt-install: installing ${missing[*]}"
    # Packages such as nginx, dbus and mender-client would start their system services;
    # the tests run their own instances. Deny service starts while installing (the policy
    # hook Debian provides for this), unless the machine already has such a policy.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# written by fwguard tests/apt-install.sh while installing\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        trap '$SUDO rm -f "$policy"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
