#!/usr/bin/env bash
# The whole reboot cycle on the virtual ARM router (QEMU `virt`, Debian's U-Boot and kernel,
# the static armv7 fwguard), from a fresh machine:
#
#   bash tests/vrouter/run.sh            all nine scenarios
#   bash tests/vrouter/run.sh 1,2,3      some of them
#
# 1 good update commits | 2 broken WAN: fwguard rolls back | 3 kernel panic: U-Boot's boot
# counter gives the slot up | 4 userspace hang: the watchdog resets, same fallback | 5 power
# cut while slot B is written | 6 power cut right after the env switch | 7 the carried trial
# (the env's fwguard_carry) lost between arming and the trial boot: fwguard on B writes
# nothing, U-Boot's counter falls back to an untouched A | 8 releases of another configuration format (compat_version): the
# minor waits for the owner, the major is refused, nothing written | 9 power cut while the
# settings are written into B: A keeps its own, the carry is taken up again.
# Serial log: target/vrouter/run/serial.log. Debian packages are cached in .cache/vrouter.
# Cargo's output goes to $CARGO_TARGET_DIR (default target/); the images to target/vrouter.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/vrouter/setup.sh
bash cross/setup.sh
bash cross/build.sh --no-budget armv7          # the router build that goes into every image
cargo build --bin fwguard-index                # the vendor tool: keys, images, signed indexes
T=${CARGO_TARGET_DIR:-target}                  # where cargo put both
FWGUARD_ARMV7=$T/armv7-unknown-linux-musleabihf/release/fwguard FWGUARD_INDEX=$T/debug/fwguard-index \
    bash tests/vrouter/build.sh target/vrouter/out
python3 tests/vrouter/run.py --out target/vrouter/out --run target/vrouter/run \
    --index-tool "$T/debug/fwguard-index" --scenarios "${1:-all}"
