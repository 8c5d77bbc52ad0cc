"""The steps the virtual router's scenarios are made of: publishing, booting, the checks of
each phase of an update."""
import os
import re
import shutil
import subprocess
import time

from vr_board import Board
from vr_common import BOOTLIMIT, Failure, check, state_summary, update_kind
from vr_server import Server


class Steps:
    def __init__(self, args):
        self.out = os.path.abspath(args.out)
        self.run = os.path.abspath(args.run)
        self.index_tool = args.index_tool
        os.makedirs(self.run, exist_ok=True)
        self.www = os.path.join(self.run, "www")
        self.log = open(os.path.join(self.run, "serial.log"), "w")
        self.server = Server(self.www)
        self.board = None
        self.marks = []

    def tool(self, *a):
        r = subprocess.run([self.index_tool, *a], capture_output=True, text=True, cwd=self.www)
        if r.returncode != 0:
            raise Failure(f"fwguard-index {' '.join(a)}: {r.stderr.strip()}")

    def publish(self, *versions, extra=()):
        """A fresh web root with a signed index offering `versions` for vrouter-arm, and 1.0
        (what the board shipped with: fwguard on it identifies it by the index). `extra`:
        (version, image version, add-release options) for releases made of another's image."""
        self.server.requests.clear()
        shutil.rmtree(self.www, ignore_errors=True)
        shutil.copytree(os.path.join(self.out, "www"), self.www)
        self.tool("new", "index.toml")
        for v in ("1.0",) + tuple(x for x in versions if x != "1.0"):
            self.tool("add-release", "index.toml", "--version", v, "--board", "vrouter-arm",
                      "--image", f"images/fw-{v}.img", "--part", f"root:rootfs:images/root-{v}.squashfs")
        for v, image, opts in extra:
            for f in ("fw-%s.img", "root-%s.squashfs"):
                shutil.copyfile(os.path.join(self.www, "images", f % image), os.path.join(self.www, "images", f % v))
            self.tool("add-release", "index.toml", "--version", v, "--board", "vrouter-arm",
                      "--image", f"images/fw-{v}.img", "--part", f"root:rootfs:images/root-{v}.squashfs", *opts)
        self.tool("sign", "index.toml", "-s", os.path.join(self.out, "keys", "vrouter.sec"))

    def image(self, version):
        return open(os.path.join(self.www, "images", f"fw-{version}.img"), "rb").read()

    def begin(self, name):
        self.log.write(f"\n######## {name}\n")
        self.board = Board(self.out, self.run, self.server.port, self.log)
        self.board.fresh()
        self.name, self.t_start, self.t_step = name, time.monotonic(), time.monotonic()
        print(f"== {name}", flush=True)

    def scenario_total(self):
        took = time.monotonic() - self.t_start
        self.marks.append((self.name, took))
        print("   %-66s %6.1f s" % ("scenario total", took), flush=True)

    def step(self, what):
        now = time.monotonic()
        print("   %-66s %6.1f s" % (what, now - self.t_step), flush=True)
        self.t_step = now

    def boots(self, version, slot, trial, count):
        b = self.board
        b.expect(r"AB: booting slot %s \(upgrade_available=%d bootcount=%x bootlimit=%d\)"
                 % (slot, 1 if trial else 0, count, BOOTLIMIT))
        b.expect(r"VROUTER: fw=%s slot=%s " % (re.escape(version), slot))

    def overlay(self, slot):
        """What the running slot's init found in its overlay (rootfs_data): the md5 of the
        owner's network settings, or "none"."""
        m = self.board.expect(r"VROUTER-OVERLAY: ubi0 on mtd%d, network (\w+)" % "AB".index(slot))
        return m.group(1)

    def wan_owned(self, slot, version):
        """The slot booted with the owner's settings and its WAN came up with them."""
        net = self.overlay(slot)
        check(net == self.owner_net, f"{version} on {slot} has network settings {net}, not the owner's {self.owner_net}")
        self.board.expect(r"VROUTER: WAN up with the owner's settings")

    def first_boot_installs(self, version):
        b = self.board
        b.power_on()
        self.boots("1.0", "A", False, 0)
        self.owner_net = self.overlay("A")
        check(self.owner_net != "none", "slot A's overlay holds no owner's network settings")
        b.expect(r"VROUTER: WAN up with the owner's settings")
        self.step("power on: U-Boot -> slot A (1.0), the owner's settings in its overlay")
        b.expect(r"installing %s into slot B" % re.escape(version))
        self.step(f"fwguard on A finds {version} in the signed index, installs into B")

    def written_and_armed(self, version):
        b = self.board
        b.expect(r"carried the owner's settings into slot B")
        b.expect(r"VROUTER: reboot requested")
        b.expect(r"VROUTER-NAND: reboot: saved")
        self.armed_a = b.nand("A")
        self.armed_state = b.state()
        check(update_kind(self.armed_state) == "armed", "A's state at the reboot: " + state_summary(self.armed_state))
        self.step(f"{version} written, verified, settings carried, trial armed; reboot")
        self.settings_carried()

    def settings_carried(self):
        """Read back through the kernel (the board's own UBI tool, not fwguard's code): the
        backup is in the other slot's rootfs_data, holding the owner's network settings as the
        running slot has them, and the running slot's overlay stayed attached and mounted."""
        b = self.board
        own = b.expect(r"VROUTER-OWN: (\d+) mount\(s\) of ubi0:rootfs_data, network (\w+)")
        check(own.group(1) == "1", f"the running slot's overlay is not mounted as it was: {own.group(0)}")
        check(own.group(2) == self.owner_net, f"the running slot's network settings changed: {own.group(0)}")
        got = b.expect(r"VROUTER-CARRIED: (.*)")
        check("etc/config/network" in got.group(1), f"the carried backup lacks the owner's settings: {got.group(0)}")
        net = b.expect(r"VROUTER-CARRIED-NETWORK: (\w+)")
        check(net.group(1) == own.group(2), "the carried network settings differ from the running slot's")
        self.step("the backup is in B's rootfs_data (UBI attached, UBIFS mounted by the kernel)")

    def commits_on_b(self, version):
        b = self.board
        self.boots(version, "B", True, 1)
        self.step(f"U-Boot boots B ({version}) on trial (bootcount 1)")
        self.restored(version)
        b.expect(r"committed %s" % re.escape(version))
        self.step("health checks pass (and hold through the soak); fwguard commits")

    def restored(self, version):
        """The trial firmware's first boot restored the carried backup (OpenWrt's preinit) and
        brought its WAN up with the owner's settings."""
        got = self.board.expect(r"VROUTER-RESTORED: (.*)")
        check("etc/config/network" in got.group(1), f"the restored backup lacks the network settings: {got.group(0)}")
        self.wan_owned("B", version)
        self.step("first boot: sysupgrade.tgz restored into the overlay; WAN up with the owner's settings")

    def a_untouched_since_armed(self):
        """From the flash file, saved at the rollback's reboot: slot A's NAND partition (its UBI,
        its rootfs_data with the owner's settings) is byte-identical to when the trial was armed."""
        b = self.board
        b.expect(r"VROUTER-NAND: reboot: saved")
        now = b.nand("A")
        diff = sum(1 for i in range(0, len(now), 2048) if now[i:i + 2048] != self.armed_a[i:i + 2048])
        check(diff == 0, f"{diff} pages of slot A's NAND partition changed between the arm and the rollback")
        self.step("flash file: A's partition byte-identical to when the trial was armed")

    def idle_memory(self):
        """The daemon's memory while it waits for its next check (the code of the check
        handed back), read from /proc/PID/status inside the guest: armv7, musl, a real kernel."""
        b = self.board
        b.expect(r"up to date")
        b.send("sleep 1; echo VROUTER-MEM $(awk '/^Vm(HWM|RSS)/ {printf \"%s%s \", $1, $2}' "
               "/proc/$(pidof fwguard)/status)")
        m = b.expect(r"VROUTER-MEM VmHWM:(\d+) VmRSS:(\d+)")
        hwm, rss = (int(x) / 1024 for x in m.groups())
        # The idle target is 4 MiB (on x86_64, measured by tests/bench); armv7 is below it.
        check(rss <= 4, f"the idle daemon holds {rss:.2f} MiB (VmRSS), over 4 MiB")
        self.step(f"idle daemon (armv7): VmRSS {rss:.2f} MiB, peak VmHWM {hwm:.2f} MiB")

    def bad_trial(self, version, failure, label):
        b = self.board
        for n in range(1, BOOTLIMIT + 1):
            b.expect(r"AB: booting slot B \(upgrade_available=1 bootcount=%x bootlimit=%d\)" % (n, BOOTLIMIT))
            b.expect(failure)
            self.step(f"trial boot {n} of B ({version}): {label}")
        b.expect(r"AB: bootcount %x > bootlimit %d: ROLLBACK from B" % (BOOTLIMIT + 1, BOOTLIMIT))
        self.boots("1.0", "A", False, 0)
        self.step("U-Boot gives B up after bootlimit tries; A (1.0) boots")

    def reported(self, version, result):
        """The vendor's report endpoint got, for `version`, the install begun, the trial armed
        (sent before the reboot into it) and exactly one outcome: `result`."""
        got = [r.get("result") for r in self.server.reports
               if r.get("release") == version and r.get("result") != "hello"]
        hellos = [r for r in self.server.reports if r.get("result") == "hello"]
        check(hellos, "the board's daemon said no hello")
        check(got == ["installing", "armed", result],
              f"reports for {version}: {got} (expected installing, armed, {result})")
        self.step(f"the vendor's endpoint got installing, armed and one {result!r} for {version}"
                  f" (and {len(hellos)} hello(s))")

    def never_retried(self, version):
        """fwguard records the failed release and later checks pass it over."""
        b = self.board
        since = len(b.lines)
        for _ in range(2):
            b.expect(r"up to date: .*%s was rolled back on this device" % re.escape(version))
        b.absent(r"installing %s" % re.escape(version), since)
        self.step(f"two later checks pass {version} over: denylisted, not retried")

    def end(self, slot, version, denied=None, ab_rollback=None, events=()):
        b = self.board
        b.power_cut()
        env = b.env()
        check(env.get("boot_slot") == slot and env.get("upgrade_available") == "0",
              f"env read back: boot_slot={env.get('boot_slot')} upgrade_available={env.get('upgrade_available')}")
        if ab_rollback is not None:
            check(env.get("ab_rollback") == ab_rollback, f"env ab_rollback={env.get('ab_rollback')!r}")
        st = b.state()
        check(update_kind(st) == "idle" and st["known_good"] == slot, "state: " + state_summary(st))
        rec = st["slot_" + slot.lower()]
        check(rec and rec["version"] == version and rec["good"], f"state slot {slot}: {rec}")
        if slot == "A":
            check(rec.get("origin") == "adopted", f"slot A (shipped with the board) is not adopted from the index: {rec}")
        if denied:
            check(denied in [d["version"] for d in st["denylist"]], f"{denied} not denylisted: " + state_summary(st))
        vols = b.nand_ubi_volumes(slot)
        check(vols is not None and {"rootfs", "rootfs_data"} <= set(vols), f"flash file: slot {slot}'s partition holds UBI volumes {vols}")
        root = open(os.path.join(self.www, "images", f"root-{version}.squashfs"), "rb").read()
        vol = b.nand_ubi_volume(slot, "rootfs")
        check(vol is not None and vol[:len(root)] == root,
              f"flash file: slot {slot}'s volume rootfs is not {version}'s root")
        seen = [h["event"] for h in st["history"]]
        for e in events:
            check(e in seen, f"no {e!r} in the history: " + state_summary(st))
        print("   end: env boot_slot=%s upgrade_available=0 bootcount=%s%s; flash file: %s's UBI holds %s; state %s"
              % (slot, env.get("bootcount"), f" ab_rollback={env.get('ab_rollback')}" if ab_rollback else "",
                 slot, vols, state_summary(st)), flush=True)
        self.scenario_total()
