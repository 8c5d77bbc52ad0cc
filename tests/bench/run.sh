#!/usr/bin/env bash
# Install benchmark: fwguard against RAUC, SWUpdate, Mender and the physical floor, on this
# machine, in one run. Installs the tools (Debian packages, idempotently) and builds fwguard.
#
#   bash tests/bench/run.sh            64 and 256 MiB, 9 runs each, a 60 s idle window and the
#                                      index benchmark; rewrites BENCHMARKS.md
#   bash tests/bench/run.sh --smoke    1 MiB, one run, every case and every check, with the
#                                      test build; fails on any wrong result (tests/run.sh
#                                      runs it so the benchmark cannot rot); writes its report
#                                      to target/bench/BENCHMARKS.md only
#   other options: --sizes 64,256 --runs 9 --idle 60 --cases fwguard-http,rauc
#
# Needs root: Mender's slots are loop devices, RAUC mounts its bundle, SWUpdate reads the
# compiled-in /etc/fw_env.config (written for the run and put back afterwards).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/apt-install.sh rauc swupdate mender-client mender-artifact squashfs-tools dbus \
    nginx-light openssl cpio time strace u-boot-tools libubootenv-tool python3

if [[ " $* " == *" --smoke "* ]]; then
    # The build the test suite already made (same profile and features): nothing to compile.
    cargo build --features failpoints --bin fwguard --bin fwguard-index
    bin=target/debug
else
    # The router build (release profile, no `demo` feature), in its own target directory so
    # that the default release build stays as it is.
    cargo build --release --no-default-features --target-dir target/bench-build \
        --bin fwguard --bin fwguard-index
    bin=target/bench-build/release
    # `fwguard sim` (making and booting the simulated router) is in demo builds only.
    cargo build --bin fwguard
fi
exec python3 tests/bench/bench.py --bin-dir "$bin" --sim-bin target/debug/fwguard "$@"
