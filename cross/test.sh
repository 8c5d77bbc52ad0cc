#!/usr/bin/env bash
# Runs fwguard on router CPUs under qemu-user: the sim-router suites for armv7 (std built from
# source) and aarch64, and the demo with each static router build. Run cross/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."

# The library-level suites: modules of the in-process test crate (tests/sim/), which drives
# the sim router through the library (the suites that start the fwguard binary as a child,
# tests/binary/, need binfmt_misc, which qemu-user lacks here). The filters select whole
# modules: each test's name begins with its module's.
modules=(cycle:: refusals:: owner:: attacks:: health_policy:: uboot_env_interop:: uboot_env_redundant:: mtd_slot:: linksys:: linksys_per_slot:: adopt:: parts:: sysupgrade:: grub_script:: ubi_slot:: uboot_ubi_root::)

echo "== armv7-unknown-linux-musleabihf: sim-router suites under qemu-arm"
RUSTC_BOOTSTRAP=1 cargo test --profile cross-test --target armv7-unknown-linux-musleabihf -Zbuild-std --test sim -- "${modules[@]}"
echo "== aarch64-unknown-linux-musl: sim-router suites under qemu-aarch64"
cargo test --profile cross-test --target aarch64-unknown-linux-musl --test sim -- "${modules[@]}"

# The demo with each router CPU's fwguard: the binary the suite's build above made (cargo
# builds a package's binaries for its integration tests), so no second build. A separate
# `cargo build` would not be one: without the test's dev-dependencies its features differ
# and everything is compiled again (about 5 minutes of CI).
for t in armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl; do
    echo "== $t: fwguard demo under qemu"
    bin=${CARGO_TARGET_DIR:-target}/$t/cross-test/fwguard
    [ -x "$bin" ] || { echo "cross/test.sh: $bin was not built by the suite's build" >&2; exit 1; }
    qemu=qemu-arm-static; [ "$t" = aarch64-unknown-linux-musl ] && qemu=qemu-aarch64-static
    out=$("$qemu" "$bin" demo)
    grep -q '^demo passed$' <<<"$out" || { echo "$out"; echo "cross/test.sh: the demo failed on $t" >&2; exit 1; }
    grep -E '^(ok|FAIL) ' <<<"$out"
done
