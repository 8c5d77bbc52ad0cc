#!/usr/bin/env bash
# The whole reboot cycle on the virtual ARM router (QEMU `virt`, Debian's U-Boot and kernel,
# the static armv7 fwguard), from a fresh machine:
#
#   bash tests/vrouter/run.sh            all six scenarios
#   bash tests/vrouter/run.sh 1,2,3      some of them
#
# 1 good update commits | 2 broken WAN: fwguard rolls back | 3 kernel panic: U-Boot's boot
# counter gives the slot up | 4 userspace hang: the watchdog resets, same fallback | 5 power
# cut while slot B is written | 6 power cut right after the env switch.
# Serial log: target/vrouter/run/serial.log. Debian packages are cached in .cache/vrouter.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tests/vrouter/setup.sh
bash cross/setup.sh
bash cross/build.sh --no-budget armv7          # the router build that goes into every image
cargo build --bin fwguard-index                # the vendor tool: keys, images, signed indexes
bash tests/vrouter/build.sh target/vrouter/out
python3 tests/vrouter/run.py --out target/vrouter/out --run target/vrouter/run \
    --index-tool target/debug/fwguard-index --scenarios "${1:-all}"
