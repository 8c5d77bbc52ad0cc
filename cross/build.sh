#!/usr/bin/env bash
# Builds the router binaries (release, size-optimised) for every target, prints their sizes,
# and enforces the armv7 size budget. Run cross/setup.sh first.
#
#   cross/build.sh                 all three targets
#   cross/build.sh armv7           one (armv7 | aarch64 | x86_64)
#   cross/build.sh --no-budget armv7   build and print sizes, without the budget check
#
# armv7-unknown-linux-musleabihf: fully static, std built from source (no prebuilt std).
# aarch64-unknown-linux-musl, x86_64-unknown-linux-musl: static, prebuilt std.
set -euo pipefail
cd "$(dirname "$0")/.."

# The armv7 fwguard binary, stripped, with TLS, must not exceed this (bytes): 1.6 MiB.
BUDGET=${FWGUARD_SIZE_BUDGET:-1677721}

check_budget=1
if [ "${1:-}" = --no-budget ]; then check_budget=; shift; fi
targets=(armv7 aarch64 x86_64)
[ $# -gt 0 ] && targets=("$@")

triple() {
    case $1 in
        armv7) echo armv7-unknown-linux-musleabihf ;;
        aarch64) echo aarch64-unknown-linux-musl ;;
        x86_64) echo x86_64-unknown-linux-musl ;;
        *) echo "unknown target $1 (armv7, aarch64, x86_64)" >&2; exit 2 ;;
    esac
}

# The router binary: no `demo` feature (the simulated world stays out of it). The linker
# also writes a map of what it kept ($1.map): the binary is stripped, but the map names every
# function linked in (rustc gives each its own section), for check_no_sim.
build() {
    local t; t=$(triple "$1")
    local map; map=-Clink-arg=-Wl,-Map=$(realpath -m "$(out_dir "$t")")/fwguard.map
    if [ "$1" = armv7 ]; then
        # std from source, optimised for size. A panic aborts without a message
        # (immediate-abort: -176 KB); fwguard's own errors are Results and print in full.
        # No unwind tables: with immediate-abort nothing ever unwinds, and ARM EHABI gave
        # every function an .ARM.exidx entry (44 KB; now one). Thumb-2 code, as in
        # .cargo/config.toml (-27% against A32). (A target-specific
        # RUSTFLAGS replaces the config's, so its flags are repeated.) The TOML parser is
        # built for size here, not for speed as on the other targets: parsing an index is
        # slower on the router, and the binary is 1.6 MiB at most.
        CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-L native=$PWD/.cross/armv7-musl/lib -Ctarget-feature=+thumb-mode -Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no -Zlocation-detail=none" \
        RUSTC_BOOTSTRAP=1 cargo rustc --release --no-default-features --target "$t" --bin fwguard \
            --config 'profile.release.package.toml.opt-level="z"' \
            --config 'profile.release.package.toml_parser.opt-level="z"' \
            -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size -- "$map"
    else
        cargo rustc --release --no-default-features --target "$t" --bin fwguard -- "$map"
    fi
}

out_dir() {
    echo "${CARGO_TARGET_DIR:-target}/$1/release"
}

# No simulator code in a router binary: no function of fwguard::sim (nor of the `sim`
# command) in the linker map. Legacy-mangled paths read _ZN7fwguard3sim... for the
# module's own functions and fwguard..sim.. inside other names (a generic instantiated for
# one of its types); v0 mangling would give 7fwguard3sim too. GNU ld lists the sections it
# dropped before the memory map: only what follows counts.
check_no_sim() {
    local map=$1 hits
    [ -s "$map" ] || { echo "cross/build.sh: no linker map $map" >&2; return 1; }
    grep -q '^Linker script and memory map' "$map" ||
        { echo "cross/build.sh: $map is not a GNU ld map; the simulator check cannot read it" >&2; return 1; }
    hits=$(sed -n '/^Linker script and memory map/,$p' "$map" |
        grep -Eo '[[:alnum:]_.$]*(7fwguard3sim|fwguard\.\.sim\.\.|7fwguard3cli7sim_cmd|fwguard\.\.cli\.\.sim_cmd)[[:alnum:]_.$]*' |
        sort -u) || true
    if [ -n "$hits" ]; then
        echo "cross/build.sh: simulator code in a router build ($map):" >&2
        head -20 <<<"$hits" >&2
        return 1
    fi
}

status=0
printf '%-34s %10s  %s\n' target bytes binary
for name in "${targets[@]}"; do
    build "$name"
    t=$(triple "$name")
    f=$(out_dir "$t")/fwguard
    size=$(stat -c %s "$f")
    printf '%-34s %10d  %s\n' "$t" "$size" "$f"
    check_no_sim "$f.map" || status=1
    if [ -n "$check_budget" ] && [ "$name" = armv7 ] && [ "$size" -gt "$BUDGET" ]; then
        echo "cross/build.sh: $f is $size bytes, over the budget of $BUDGET bytes" >&2
        status=1
    fi
done
exit $status
