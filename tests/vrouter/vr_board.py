"""The virtual router itself: QEMU per power-on, the serial console, the flash and disk files."""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time

from vr_common import BAD_BLOCKS, ENV_PART, ERASE_BLOCK, NAND_PART, STATE_FILE, Failure

class Board:
    """The virtual router: a QEMU process per power-on and per guest reset, one serial log."""

    def __init__(self, out, run, port, log):
        self.out, self.run, self.port, self.log = out, run, port, log
        self.lines = []  # every serial line since the scenario started
        self.cursor = 0  # expect() searches from here
        self.partial = ""
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.proc = None
        self.powered = False
        self.up = False  # the running firmware has reached its shell (VROUTER READY)
        self.thread = None
        self.t0 = time.monotonic()

    def fresh(self):
        for f in ("flash1.img", "disk.img", "nand.img"):
            shutil.copyfile(os.path.join(self.out, f), os.path.join(self.run, f))

    def qemu_cmd(self):
        return [
            "qemu-system-arm", "-M", "virt", "-cpu", "cortex-a15", "-smp", "1", "-m", "512",
            "-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-bios", "/usr/lib/u-boot/qemu_arm/u-boot.bin",
            "-drive", f"if=pflash,unit=1,format=raw,file={self.run}/flash1.img",
            # The flash file's disk before the main one: U-Boot's virtio 0 (the boot script's) and
            # the kernel's vda are then disk.img.
            "-drive", f"if=none,id=hd1,format=raw,file={self.run}/nand.img",
            "-device", "virtio-blk-device,drive=hd1",
            "-drive", f"if=none,id=hd0,format=raw,file={self.run}/disk.img",
            "-device", "virtio-blk-device,drive=hd0",
            "-netdev", f"user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:busybox nc 127.0.0.1 {self.port}",
            "-device", "virtio-net-device,netdev=n0",
        ]

    def _line(self, text):
        text = text.rstrip("\r")
        self.log.write("[%7.2f] %s\n" % (time.monotonic() - self.t0, text))
        self.log.flush()
        if text.startswith("VROUTER READY "):
            self.up = True
        with self.cond:
            self.lines.append(text)
            self.cond.notify_all()

    def _loop(self):
        while self.powered:
            p = subprocess.Popen(self.qemu_cmd(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            self.proc = p
            self.up = False
            while True:
                chunk = p.stdout.read1(4096)
                if not chunk:
                    break
                text = self.partial + chunk.decode("utf-8", "replace")
                *done, self.partial = text.split("\n")
                for line in done:
                    self._line(line)
            p.wait()
            if self.partial:
                self._line(self.partial)
                self.partial = ""
            if self.powered:
                self._line("=== harness: the guest reset (QEMU exited %d); cold start" % p.returncode)

    def power_on(self):
        self._line("=== harness: power on")
        self.powered = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def power_cut(self, saved=False):
        """Pull the plug: SIGKILL QEMU, whatever the guest is doing. With the board up, the
        chip is saved into the flash file first, everything stopped (guest/vrouter-cut);
        `saved`: the board has just saved it itself (a reboot's save, seen on the console)."""
        if self.up and not saved and self.proc and self.proc.poll() is None:
            self.send("vrouter-cut")
            self.expect(r"VROUTER-NAND: cut: saved", timeout=60)
        self.powered = False
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.thread.join(30)
        self._line("=== harness: power cut")

    def send(self, command):
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()

    def expect(self, pattern, timeout=120):
        """Wait for a serial line matching `pattern` after the previous match; return the match."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                while self.cursor < len(self.lines):
                    m = rx.search(self.lines[self.cursor])
                    self.cursor += 1
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.lines[-25:])
                    raise Failure(f"no line matching {pattern!r} within {timeout} s; last lines:\n{tail}")
                self.cond.wait(left)

    def absent(self, pattern, since):
        """Fail if a line since index `since` matches `pattern`."""
        rx = re.compile(pattern)
        with self.lock:
            hits = [l for l in self.lines[since:] if rx.search(l)]
        if hits:
            raise Failure(f"unexpected line {hits[0]!r}")

    # ---- reading the board's storage back, from the host, after the power is off
    def env(self):
        cfg = os.path.join(self.run, "fw_env.config")
        with open(cfg, "w") as f:
            f.write(f"{self.run}/disk.img {ENV_PART[0]:#x} {ENV_PART[1]:#x}\n")
        r = subprocess.run(["fw_printenv", "-c", cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"fw_printenv on disk.img failed: {r.stderr.strip()}")
        return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    def nand(self, slot):
        """Slot `slot`'s NAND partition, page by page, as the flash file holds it."""
        off, size = NAND_PART[slot]
        with open(os.path.join(self.run, "nand.img"), "rb") as f:
            f.seek(off)
            return f.read(size)

    def nand_ubi_volumes(self, slot):
        """The volume names of the UBI on slot `slot`'s partition, from the flash file: every
        good erase block starts with a UBI erase-counter header ("UBI#"), and the layout
        volume's records hold the names. None if the partition holds no UBI."""
        part = self.nand(slot)
        blocks = [part[i:i + ERASE_BLOCK] for i in range(0, len(part), ERASE_BLOCK)]
        good = [b for n, b in enumerate(blocks) if n not in BAD_BLOCKS[slot]]
        if not all(b[:4] == b"UBI#" for b in good):
            return None
        names = set()
        for b in good:
            vid_off = struct.unpack(">I", b[16:20])[0]
            data_off = struct.unpack(">I", b[20:24])[0]
            vid = b[vid_off:vid_off + 64]
            if vid[:4] == b"UBI!" and struct.unpack(">I", vid[8:12])[0] == 0x7FFFEFFF:
                for r in range(128):
                    rec = b[data_off + 172 * r:data_off + 172 * (r + 1)]
                    n = struct.unpack(">H", rec[14:16])[0]
                    if 0 < n <= 127:
                        names.add(rec[16:16 + n].decode("ascii", "replace"))
        return sorted(names)

    def nand_ubi_volume(self, slot, name):
        """The content of volume `name` of the UBI on slot `slot`'s partition, from the flash
        file, as the kernel would serve it: its logical blocks in order, each from the erase
        block whose volume header names it with the highest sequence number. None if there
        is no such volume."""
        part = self.nand(slot)
        vtbl, lebs = None, {}
        for n in range(len(part) // ERASE_BLOCK):
            b = part[n * ERASE_BLOCK:(n + 1) * ERASE_BLOCK]
            if n in BAD_BLOCKS[slot] or b[:4] != b"UBI#":
                continue
            vid_off, data_off = struct.unpack(">II", b[16:24])
            vid = b[vid_off:vid_off + 64]
            if vid[:4] != b"UBI!":
                continue
            vol, lnum = struct.unpack(">II", vid[8:16])
            sqnum = struct.unpack(">Q", vid[40:48])[0]
            if vol == 0x7FFFEFFF:
                vtbl = b[data_off:]
            elif sqnum >= lebs.get((vol, lnum), (-1, b""))[0]:
                lebs[(vol, lnum)] = (sqnum, b[data_off:])
        if vtbl is None:
            return None
        ids = [r for r in range(128)
               if vtbl[172 * r + 16:172 * r + 16 + struct.unpack(">H", vtbl[172 * r + 14:172 * r + 16])[0]] == name.encode()]
        if not ids:
            return None
        mine = sorted((lnum, data) for (vol, lnum), (_, data) in lebs.items() if vol == ids[0])
        return b"".join(data for _, data in mine)

    def part(self, offset, size):
        with open(os.path.join(self.run, "disk.img"), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def state_line(self):
        """What the board last printed of fwguard's state file (guest/vrouter-state, at a
        reboot or a harness power cut) since it was powered on: the JSON text, "none" (no
        state file in the running slot's overlay), or None when it printed nothing."""
        with self.lock:
            lines = list(self.lines)
        for line in reversed(lines):
            if line.startswith("=== harness: power on"):
                return None
            m = re.search(r"VROUTER-STATE: (.*)$", line)
            if m:
                return m.group(1).strip()
        return None

    def state(self):
        """fwguard's state in the running slot's overlay, as printed at the last reboot or cut."""
        text = self.state_line()
        if text in (None, "none"):
            raise Failure(f"no {STATE_FILE} printed since the power on (got {text!r})")
        return json.loads(text)

    def unset_env(self, name):
        """Delete variable `name` from the live env on disk.img with the real fw_setenv (the
        power is off)."""
        cfg = os.path.join(self.run, "fw_env.config")
        with open(cfg, "w") as f:
            f.write(f"{self.run}/disk.img {ENV_PART[0]:#x} {ENV_PART[1]:#x}\n")
        r = subprocess.run(["fw_setenv", "-c", cfg, name], capture_output=True, text=True)
        if r.returncode != 0:
            raise Failure(f"fw_setenv on disk.img failed: {r.stderr.strip()}")
