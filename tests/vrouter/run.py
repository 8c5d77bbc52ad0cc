#!/usr/bin/env python3
"""The whole update cycle on the virtual ARM router: real U-Boot, real kernel, the real
cross-built fwguard, across real reboots and power cuts.

    run.py --out OUT_DIR [--scenarios 1,2,3 | all] [--run RUN_DIR]

OUT_DIR is what build.sh made. Each scenario starts from a fresh copy of its flash bank and
disk (slot A holds firmware 1.0, committed), publishes a signed index on an HTTP server bound
to 127.0.0.1, powers the board on and follows the serial console. After it, the live U-Boot
env is read back from the disk image with the real `fw_printenv`. The board has no partition
both slots mount (as a WRT32X): fwguard's state is in the running slot's overlay (UBIFS on its
NAND partition), a trial's facts travel in the env; the board prints the state file at each
reboot and harness power cut (guest/vrouter-state), as the flash holds it then.

Networking: QEMU user-mode net with restrict=on; the guest reaches only 10.0.2.100:80, which
QEMU relays (`busybox nc`) to the HTTP server on 127.0.0.1. Nothing else.

Every guest reset ends the QEMU process (-no-reboot) and the harness starts a new one on the
same image files: a cold reboot, faster under TCG than a reset in place. A power cut is a
SIGKILL of QEMU at a chosen moment.

The NAND (the guest kernel's nandsim) keeps its pages in RAM; the board keeps them in its flash
file (nand.img, a virtio disk of its own) across power-offs: the guest programs them back at
boot and saves them at each reboot. A power cut while the board is up is taken in two steps so
that the flash file holds what the chip held at that instant: the guest stops writeback and
every process and saves the chip (guest/vrouter-cut), then QEMU is killed. A cut before the
board is up (U-Boot, early init) is the kill alone: nothing has programmed the NAND yet.

The scenarios are here; what they are made of is beside it: vr_server.py (the update server),
vr_board.py (QEMU, the console, the flash and disk files), vr_steps.py (the steps of an update
and their checks), vr_common.py (the board's layout).
"""
import argparse
import os
import re
import sys
import time

from vr_common import BOOTLIMIT, MiB, SLOT_PART, Failure, check, state_summary, update_kind
from vr_steps import Steps


class Harness(Steps):
    """The scenarios."""

    # 1 ------------------------------------------------------------------------------------
    def s1_good_update(self):
        self.begin("1. a good update commits")
        self.publish("2.0")
        self.first_boot_installs("2.0")
        self.written_and_armed("2.0")
        self.commits_on_b("2.0")
        self.idle_memory()
        since = len(self.board.lines)
        self.board.send("vrouter-reboot")
        self.boots("2.0", "B", False, 0)
        self.wan_owned("B", "2.0")
        self.board.absent(r"VROUTER-RESTORED", since)
        self.step("the next boot stays on B, committed (no counting), the owner's settings kept")
        self.end("B", "2.0", events=("trial-started", "committed"))

    # 2 ------------------------------------------------------------------------------------
    def s2_broken_wan(self):
        self.begin("2. an update that breaks the WAN rolls back by itself")
        self.publish("3.0")
        self.first_boot_installs("3.0")
        self.written_and_armed("3.0")
        self.boots("3.0", "B", True, 1)
        self.board.expect(r"trial health checks failing: .*wan-link")
        self.step("B (3.0) boots on trial; its health checks fail")
        self.board.expect(r"VROUTER: reboot requested")
        self.step("trial deadline passes; fwguard switches back to A and reboots")
        self.a_untouched_since_armed()
        on_b = self.board.state()
        check(update_kind(on_b) == "rolling_back" and "rollback" in [h["event"] for h in on_b["history"]],
              "B's state at the rollback: " + state_summary(on_b))
        self.boots("1.0", "A", False, 0)
        self.wan_owned("A", "1.0")
        self.step("A (1.0) boots, committed, with its own settings")
        self.never_retried("3.0")
        self.reported("3.0", "rolled-back")
        self.end("A", "1.0", denied="3.0", events=("rolled-back",))

    # 3 ------------------------------------------------------------------------------------
    def s3_kernel_panic(self):
        self.begin("3. an update whose kernel panics is given up by U-Boot")
        self.publish("4.0")
        self.first_boot_installs("4.0")
        self.written_and_armed("4.0")
        self.bad_trial("4.0", r"Kernel panic - not syncing", "kernel panic, reboot")
        self.never_retried("4.0")
        self.reported("4.0", "trial-failed")
        self.end("A", "1.0", denied="4.0", ab_rollback="B", events=("trial-failed",))

    # 4 ------------------------------------------------------------------------------------
    def s4_userspace_hang(self):
        self.begin("4. an update that hangs in userspace is reset by the watchdog")
        self.publish("5.0")
        self.first_boot_installs("5.0")
        self.written_and_armed("5.0")
        self.bad_trial("5.0", r"softdog: Initiating system reboot", "hang, watchdog reset")
        self.never_retried("5.0")
        self.end("A", "1.0", denied="5.0", ab_rollback="B", events=("trial-failed",))

    # 5 ------------------------------------------------------------------------------------
    def s5_power_cut_mid_write(self):
        self.begin("5. a power cut while slot B is written")
        self.publish("2.0")
        image = self.image("2.0")
        self.server.set_gate("/images/fw-2.0.img", 3 * MiB)
        self.first_boot_installs("2.0")
        check(self.server.gate_reached.wait(60), "the download never reached 3 MiB")
        time.sleep(1.5)  # fwguard writes what it has into slot B
        self.board.power_cut()
        self.server.release_gate()
        self.step("power cut after 3 MiB of 7.7 MiB, streaming into slot B")
        env = self.board.env()
        check(env.get("boot_slot") == "A" and env.get("upgrade_available") == "0", f"env after the cut: {env}")
        b_head = self.board.part(SLOT_PART["B"][0], 512)
        check(b_head != image[:512], "slot B starts with the FIT although it was never verified (U-Boot would boot it)")
        st = self.board.state()
        check(update_kind(st) == "installing", "state after the cut: " + state_summary(st))
        self.step("read back: env still boots A; B does not start with the FIT; state says installing")
        self.board.power_on()
        self.boots("1.0", "A", False, 0)
        self.step("power on: A boots (it never stopped being the committed slot)")
        self.board.expect(r"installing 2\.0 into slot B")
        self.written_and_armed("2.0")
        self.commits_on_b("2.0")
        check(self.server.fetches("/images/fw-2.0.img") == 2, f"image fetched {self.server.fetches('/images/fw-2.0.img')} times")
        seen = [h["event"] for h in self.armed_state["history"]]
        check("install-interrupted" in seen, "A's state at the arm has no install-interrupted: " + state_summary(self.armed_state))
        self.end("B", "2.0", events=("committed",))

    # 6 ------------------------------------------------------------------------------------
    def s6_power_cut_after_switch(self):
        self.begin("6. a power cut right after the env switch")
        self.publish("2.0")
        self.first_boot_installs("2.0")
        self.board.expect(r"VROUTER: reboot requested")
        self.board.expect(r"VROUTER-NAND: reboot: saved")
        self.board.power_cut(saved=True)
        self.step("power cut between the env switch and the reboot")
        env = self.board.env()
        check(env.get("boot_slot") == "B" and env.get("upgrade_available") == "1" and env.get("bootcount") == "0",
              f"env after the cut: {env}")
        st = self.board.state()
        check(update_kind(st) == "armed", "state after the cut: " + state_summary(st))
        self.step("read back: env boot_slot=B upgrade_available=1 bootcount=0; state armed")
        self.board.power_on()
        self.commits_on_b("2.0")
        self.end("B", "2.0", events=("committed",))


    # 7 ------------------------------------------------------------------------------------
    def s7_state_lost_before_trial(self):
        self.begin("7. the carried trial is lost between arming and booting the trial")
        b = self.board
        self.publish("2.0")
        self.first_boot_installs("2.0")
        b.expect(r"VROUTER: reboot requested")
        b.expect(r"VROUTER-NAND: reboot: saved")
        b.power_cut(saved=True)
        st = b.state()
        check(update_kind(st) == "armed", "state after the cut: " + state_summary(st))
        self.step("2.0 written into B, trial armed; power cut before the reboot")
        check("fwguard_carry" in b.env(), "the armed trial is not carried in the env")
        b.unset_env("fwguard_carry")
        check("fwguard_carry" not in b.env(), "fw_setenv left fwguard_carry in the env")
        self.step("fw_setenv: fwguard_carry deleted from the env (B's fwguard cannot know the trial)")
        slot_a = b.part(*SLOT_PART["A"])
        self.armed_a = b.nand("A")
        one = self.image("1.0")
        check(slot_a[: len(one)] == one, "slot A does not start with the 1.0 image")
        env0 = b.env()
        ab = ("boot_slot", "upgrade_available", "bootcount", "bootlimit", "ab_rollback")
        check([env0.get(k) for k in ab] == ["B", "1", "0", str(BOOTLIMIT), None], f"env after the cut: {env0}")
        self.step("read back: env B on trial, bootcount 0; slot A's bytes recorded")

        unexplained = r"trial of slot B armed that fwguard's state does not explain"
        on_b = r"committed \d|installing \S+ into slot|rebooting: |rolled back|trial boot: running health checks|boot counter reset|VROUTER: reboot requested"
        first_b = len(b.lines)
        for n in range(1, BOOTLIMIT + 1):
            since = len(b.lines)
            b.power_on()
            self.boots("2.0", "B", True, n)
            t_warn = time.monotonic()
            b.expect(unexplained, timeout=90)
            if n == 1:
                # The daemon looks again each check interval (4 s): it keeps warning, and in
                # that time a trial it could explain would have passed its soak and committed.
                warnings, deadline = 1, t_warn + 20
                while time.monotonic() < deadline:
                    try:
                        b.expect(unexplained, timeout=max(0.1, deadline - time.monotonic()))
                        warnings += 1
                    except Failure:
                        break
                time.sleep(max(0.0, deadline - time.monotonic()))
                b.absent(on_b, since)
                check(warnings >= 3, f"{warnings} unexplained-trial warnings in 20 s (the daemon looks again every 4 s)")
                self.step(f"trial boot 1 of B (2.0): fwguard warns ({warnings}x in 20 s), no commit")
            else:
                b.absent(on_b, since)
                self.step(f"trial boot {n} of B (2.0): fwguard warns again, writes nothing")
            b.power_cut()
            env = b.env()
            changed = {k: (v, env.get(k)) for k, v in env0.items() if env.get(k) != v and k != "bootcount"}
            check(not changed and env.get("bootcount") == "%x" % n,
                  f"env after trial boot {n}: bootcount={env.get('bootcount')} changed={changed}")
        self.step("after each cut: only U-Boot's bootcount moved in the env")
        b.power_on()
        b.expect(r"AB: bootcount %x > bootlimit %d: ROLLBACK from B" % (BOOTLIMIT + 1, BOOTLIMIT))
        rollback_at = b.cursor
        self.boots("1.0", "A", False, 0)
        b.power_cut()  # before fwguard starts on A: what is asserted is what B and U-Boot left
        self.step("U-Boot gives B up after bootlimit tries; A (1.0) boots")
        with b.lock:
            on_b_lines = b.lines[first_b:rollback_at]
        hits = [l for l in on_b_lines if re.search(on_b, l)]
        check(not hits, f"fwguard on B acted: {hits[:3]}")
        check(sum(1 for l in on_b_lines if re.search(unexplained, l)) >= BOOTLIMIT, "not every trial boot of B warned")
        self.end_untouched(slot_a, on_b_lines)

    def end_untouched(self, slot_a, on_b_lines):
        """Scenario 7's end: U-Boot's fallback, and nothing written by fwguard on B."""
        b = self.board
        env = b.env()
        check(env.get("boot_slot") == "A" and env.get("upgrade_available") == "0" and env.get("ab_rollback") == "B",
              f"env read back: boot_slot={env.get('boot_slot')} upgrade_available={env.get('upgrade_available')} "
              f"ab_rollback={env.get('ab_rollback')!r}")
        check(b.part(*SLOT_PART["A"]) == slot_a, "slot A (the fallback) changed while B ran on trial")
        check(b.nand("A") == self.armed_a, "slot A's NAND partition (its settings and state) changed while B ran on trial")
        states = [l for l in on_b_lines if "VROUTER-STATE: " in l]
        check(len(states) >= BOOTLIMIT and all(l.endswith("VROUTER-STATE: none") for l in states),
              f"fwguard on B saved a state: {states[:2]}")
        print("   end: env boot_slot=A upgrade_available=0 bootcount=%s ab_rollback=B; slot A's %d MiB unchanged; "
              "B's overlay held no fwguard state at any of its %d cuts" % (env.get("bootcount"), SLOT_PART["A"][1] // MiB, len(states)), flush=True)
        print("   end: flash file: slot A's NAND partition (UBI, rootfs_data) unchanged since the arm", flush=True)
        self.scenario_total()


    # 8 ------------------------------------------------------------------------------------
    def s8_config_break(self):
        self.begin("8. releases whose configuration format breaks with the running firmware's")
        b = self.board
        major = "the configuration moved to a new format: install 6.0 with the factory image"
        self.publish(extra=(("6.0", "2.0", ["--compat-version", "2.0", "--compat-message", major]),
                            ("7.0", "2.0", ["--compat-version", "1.1"])))
        b.power_on()
        self.boots("1.0", "A", False, 0)
        self.owner_net = self.overlay("A")
        b.expect(r"VROUTER READY")
        self.step("power on: A (1.0), configuration format 1.0 (the default)")
        minor = r"available, needs owner action: 7\.0 cannot take this firmware's settings: its configuration format is 1\.1, the running firmware's is 1\.0.*--no-settings"
        for _ in range(2):
            b.expect(minor, timeout=60)
        self.step("the daemon: 7.0 (another minor) waits for the owner, twice, installs nothing")
        b.send("fwguard pin 6.0; echo VROUTER-RC=$?")
        m = b.expect(r"6\.0 cannot be installed over this firmware: its configuration format is 2\.0, the running firmware's is 1\.0 \(another major version.*the vendor says: (.*)")
        check(major in m.group(1), f"the vendor's message is not given: {m.group(0)}")
        rc = b.expect(r"VROUTER-RC=(\d+)")
        check(rc.group(1) != "0", "fwguard pin 6.0 succeeded")
        self.step(f"the owner's `fwguard pin 6.0` (another major): refused with the vendor's message, exit {rc.group(1)}")
        b.send("fwguard update; echo VROUTER-RC=$?")
        b.expect(r"7\.0 cannot take this firmware's settings.*--no-settings")
        rc = b.expect(r"VROUTER-RC=(\d+)")
        check(rc.group(1) != "0", "fwguard update succeeded")
        self.step(f"the owner's `fwguard update`: 7.0 explained, not installed without --no-settings (exit {rc.group(1)})")
        b.send("fwguard status")
        b.expect(r"needs owner action.*7\.0")
        self.step("`fwguard status`: 7.0 available, needs owner action")
        b.power_cut()
        images = [p for p, _ in self.server.requests if p.startswith("/images/")]
        check(not images, f"images fetched: {images}")
        env = b.env()
        check(env.get("boot_slot") == "A" and env.get("upgrade_available") == "0", f"env: {env}")
        check(not any(b.part(*SLOT_PART["B"])), "slot B's partition was written")
        check(set(b.nand("B")) == {0xFF}, "slot B's NAND partition was programmed")
        st = b.state()
        check(update_kind(st) == "idle" and st.get("pin") is None, "state: " + state_summary(st))
        print("   end: no image fetched; env boot_slot=A upgrade_available=0; slot B and its NAND partition untouched; "
              "state " + state_summary(st), flush=True)
        self.scenario_total()


    # 9 ------------------------------------------------------------------------------------
    def s9_power_cut_mid_carry(self):
        self.begin("9. a power cut while the settings are written into slot B")
        b = self.board
        self.publish("2.0")
        self.server.set_gate("/images/fw-2.0.img", 1 * MiB)
        b.power_on()
        self.boots("1.0", "A", False, 0)
        self.owner_net = self.overlay("A")
        b.expect(r"VROUTER READY")
        check(self.server.gate_reached.wait(60), "the download never started")
        # The owner's settings grow by 1.5 MiB that does not compress (say, certificates): their
        # backup takes a while to write into B, and the cut lands in it.
        b.send("dd if=/dev/urandom of=/overlay/etc/owner-certs.bin bs=64k count=24 2>/dev/null; sync; "
               "echo VROUTER-CERTS $(md5sum < /overlay/etc/owner-certs.bin | cut -c1-12)")
        certs = b.expect(r"VROUTER-CERTS (\w+)").group(1)
        self.server.release_gate()
        self.step("A (1.0) up; the owner adds 1.5 MiB to its settings while 2.0 downloads")
        b.expect(r'mounted volume "rootfs_data" of ubi\d+ \(on /dev/mtd1\) for the settings', timeout=180)
        since = len(b.lines)
        b.power_cut()
        b.absent(r"carried the owner's settings|VROUTER: reboot requested", since - 1)
        env = b.env()
        check(env.get("boot_slot") == "A" and env.get("upgrade_available") == "0", f"env after the cut: {env}")
        st = b.state()
        self.step(f"power cut while the backup is written into B's new rootfs_data: env boots A; state {update_kind(st)}")
        b.power_on()
        self.boots("1.0", "A", False, 0)
        self.wan_owned("A", "1.0")
        b.expect(r"VROUTER READY")
        b.send("echo VROUTER-CERTS $(md5sum < /overlay/etc/owner-certs.bin | cut -c1-12)")
        check(b.expect(r"VROUTER-CERTS (\w+)").group(1) == certs, "A's settings changed across the cut")
        self.step("power on: A boots with its own settings, unchanged")
        b.expect(r"carried the owner's settings into slot B", timeout=180)
        b.expect(r"VROUTER: reboot requested")
        b.expect(r"VROUTER-NAND: reboot: saved")
        self.step("fwguard on A takes the update up again: settings carried, trial armed; reboot")
        self.boots("2.0", "B", True, 1)
        got = b.expect(r"VROUTER-RESTORED: (.*)")
        check("etc/owner-certs.bin" in got.group(1) and "etc/config/network" in got.group(1),
              f"the restored backup lacks the owner's settings: {got.group(0)}")
        self.wan_owned("B", "2.0")
        b.expect(r"VROUTER READY")
        b.send("echo VROUTER-CERTS $(md5sum < /overlay/etc/owner-certs.bin | cut -c1-12); ls -a /overlay")
        check(b.expect(r"VROUTER-CERTS (\w+)").group(1) == certs, "B's restored settings differ from A's")
        self.step("B (2.0) on trial: the whole backup restored, WAN up with the owner's settings")
        b.expect(r"committed 2\.0")
        self.step("health checks pass; fwguard commits")
        self.end("B", "2.0", events=("committed",))


SCENARIOS = {
    "1": Harness.s1_good_update,
    "2": Harness.s2_broken_wan,
    "3": Harness.s3_kernel_panic,
    "4": Harness.s4_userspace_hang,
    "5": Harness.s5_power_cut_mid_write,
    "6": Harness.s6_power_cut_after_switch,
    "7": Harness.s7_state_lost_before_trial,
    "8": Harness.s8_config_break,
    "9": Harness.s9_power_cut_mid_carry,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="what build.sh made")
    ap.add_argument("--run", default=None, help="scratch dir: disk copies, serial.log (default OUT/../run)")
    ap.add_argument("--scenarios", default="all", help="comma-separated numbers 1-9, or all")
    ap.add_argument("--index-tool", default=os.environ.get("FWGUARD_INDEX", "target/debug/fwguard-index"))
    args = ap.parse_args()
    args.index_tool = os.path.abspath(args.index_tool)
    if args.run is None:
        args.run = os.path.join(os.path.dirname(os.path.abspath(args.out)), "run")
    picked = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    for s in picked:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r} (1-9 or all)")
    h = Harness(args)
    print(f"serial log: {h.run}/serial.log; update server 127.0.0.1:{h.server.port}", flush=True)
    t0 = time.monotonic()
    try:
        for s in picked:
            SCENARIOS[s](h)
    except Failure as e:
        print(f"FAIL ({h.name}): {e}", flush=True)
        return 1
    finally:
        if h.board and h.board.powered:
            h.board.power_cut()  # never leave a QEMU behind
    print("\n   %-66s %8s" % ("scenario", "time"))
    for name, took in h.marks:
        print("   %-66s %6.1f s" % (name, took))
    print("   %-66s %6.1f s" % ("total", time.monotonic() - t0))
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
