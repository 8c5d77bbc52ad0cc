#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with a Rust toolchain: installs what the
# tests need (idempotently), then runs every test. Used by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: the real U-Boot env tools, to check fwguard's env format.
#   u-boot-tools     mkenvimage, mkimage (uImage and FIT boot images)
#   device-tree-compiler  dtc, which mkimage -f needs for a FIT
#   squashfs-tools   mksquashfs (root file system parts of multi-part releases)
#   mtd-utils        ubinize (UBI images: the root of NAND firmware, the Linksys factory image)
#   libubootenv-tool fw_printenv / fw_setenv (the libubootenv implementation)
#   grub-common      grub-editenv, to check the GRUB environment block format
#   signify-openbsd  signify, to check index keys and signatures interchange with it
#   iproute2         network namespaces for the health-check tests (they need root)
#   dnsmasq-base     the DNS server of the simulated internet
#   openssl          makes the CA and server certificates of the https tests
#   chromium         loads the fleet service's dashboard headless (its DOM and a screenshot)
#   postgresql       the fleet service's tests on a real PostgreSQL server (a cluster of their own)
packages=(u-boot-tools device-tree-compiler squashfs-tools mtd-utils mount libubootenv-tool grub-common signify-openbsd iproute2 dnsmasq-base openssl chromium postgresql)
command -v python3 >/dev/null || packages+=(python3)   # the simulated internet's web server
bash tests/apt-install.sh "${packages[@]}"

phase() { echo "tests/run.sh: $1 took $((SECONDS - t0)) s"; t0=$SECONDS; }
t0=$SECONDS

# One build with the crash points and the vendor's fleet service compiled in; every test
# target runs from it.
cargo test --features failpoints,fleet --all-targets
phase "host tests"

# The install benchmark's smoke run (1 MiB, every tool, every check): its numbers are not
# judged here, but every case must do the work right, so the benchmark cannot rot.
bash tests/bench/run.sh --smoke
phase "benchmark smoke run"

# Router CPUs: the sim-router suites and the demo for armv7 and aarch64 under qemu-user.
bash cross/setup.sh
# The router builds with their sizes, and the size budget: the armv7 binary, stripped, with
# TLS, at most 1.6 MiB (cross/build.sh fails the run when over). The router CPUs only: the
# x86_64 musl build (`cross/build.sh x86_64`) runs on no router the suite checks, and one
# fat-LTO build less keeps CI inside its time. armv7 is built last: its build sets
# RUSTC_BOOTSTRAP (std from source), which proc-macro2's build script watches, so a build
# without it in between would make the virtual router's armv7 build (below) compile
# everything again.
bash cross/build.sh aarch64 armv7
# The .ipk assembled from the armv7 router build (its contents: tests/binary/packaging.rs).
ipk_dir=$(mktemp -d)
bash cross/package-ipk.sh target/armv7-unknown-linux-musleabihf/release/fwguard arm_cortex-a9_vfpv3-d16 "$ipk_dir"
rm -rf "$ipk_dir"
phase "router builds and the size budget"
bash cross/test.sh
phase "armv7 and aarch64 under qemu-user"

# The whole reboot cycle on the virtual ARM router: Debian's U-Boot and kernel under
# qemu-system-arm, the static armv7 router build inside every firmware. Scenarios 1-3 (good
# update, broken WAN, kernel panic) and 7 (the carried trial lost before the trial boot: it
# writes nothing and U-Boot's counter falls back to an untouched slot A) keep CI inside its
# budget; `tests/vrouter/run.sh` alone runs all nine.
bash tests/vrouter/run.sh 1,2,3,7
phase "virtual ARM router"
