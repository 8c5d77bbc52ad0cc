#!/usr/bin/env bash
# Runs fwguard on router CPUs under qemu-user: the sim-router suites for armv7 (std built from
# source) and aarch64, and the demo with each static router build. Run cross/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."

# The library-level suites: modules of the in-process test crate (tests/sim/), which drives
# the sim router through the library (the suites that start the fwguard binary as a child,
# tests/binary/, need binfmt_misc, which qemu-user lacks here). The filters select whole
# modules: each test's name begins with its module's.
modules=(cycle:: refusals:: owner:: attacks:: health_policy:: uboot_env_interop:: uboot_env_redundant:: mtd_slot:: linksys:: linksys_per_slot:: adopt:: parts:: sysupgrade:: grub_script:: ubi_slot::)

echo "== armv7-unknown-linux-musleabihf: sim-router suites under qemu-arm"
RUSTC_BOOTSTRAP=1 cargo test --profile cross-test --target armv7-unknown-linux-musleabihf -Zbuild-std --test sim -- "${modules[@]}"
echo "== aarch64-unknown-linux-musl: sim-router suites under qemu-aarch64"
cargo test --profile cross-test --target aarch64-unknown-linux-musl --test sim -- "${modules[@]}"

for t in armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl; do
    echo "== $t: fwguard demo under qemu"
    if [ "$t" = armv7-unknown-linux-musleabihf ]; then
        RUSTC_BOOTSTRAP=1 cargo build --profile cross-test --target "$t" --bin fwguard -Zbuild-std
    else
        cargo build --profile cross-test --target "$t" --bin fwguard
    fi
    qemu=qemu-arm-static; [ "$t" = aarch64-unknown-linux-musl ] && qemu=qemu-aarch64-static
    out=$("$qemu" "target/$t/cross-test/fwguard" demo)
    grep -q '^demo passed$' <<<"$out" || { echo "$out"; echo "cross/test.sh: the demo failed on $t" >&2; exit 1; }
    grep -E '^(ok|FAIL) ' <<<"$out"
done
