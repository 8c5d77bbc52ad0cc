"""RAUC, SWUpdate and Mender from Debian, each doing the same work as fwguard: a signed image
into slot B, verified, and the boot slot switched through a file-backed bootloader state.
Each tool's own bundle builder makes its artifact; no tool is modified."""

import os
import shutil
import subprocess
import time
from pathlib import Path

from cases import Case, env_value, same_prefix, sh
from measure import MIB, Service


# Files at fixed host paths some tools insist on (/etc/fw_env.config,
# /etc/mender/artifact_info): saved before the first write, put back by restore_host_files().
_saved: dict[Path, tuple[bytes | None, bool]] = {}


def host_write(path: str, text: str):
    p = Path(path)
    if p not in _saved:
        _saved[p] = (p.read_bytes() if p.exists() else None, not p.parent.exists())
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def restore_host_files():
    for p, (saved, made_dir) in _saved.items():
        if saved is not None:
            p.write_bytes(saved)
            continue
        p.unlink(missing_ok=True)
        if made_dir:
            p.parent.rmdir()
    _saved.clear()


class Rauc(Case):
    """RAUC 1.8: a plain (squashfs) bundle, a private D-Bus session bus, `rauc service`
    pretending slot A is booted, and a `custom` bootloader backend keeping its state in files.
    The work happens in the service, so its CPU and peak RSS are counted."""

    name = "rauc"

    def __init__(self, ctx):
        super().__init__(ctx)
        d = self.dir
        self.boot = d / "bootstate"
        self.boot.mkdir(exist_ok=True)
        self.slots = [d / "rootfs.0", d / "rootfs.1"]
        for s in self.slots:
            s.touch()
        backend = d / "backend.sh"
        backend.write_text(f"""#!/bin/sh
# RAUC custom bootloader backend: the primary slot and the slot states in files.
cd '{self.boot}' || exit 1
case "$1" in
  get-primary) cat primary ;;
  set-primary) echo "$2" > primary.new && mv primary.new primary ;;
  get-state) cat "state.$2" 2>/dev/null || echo good ;;
  set-state) echo "$3" > "state.$2" ;;
  get-current) echo A ;;
  *) echo "backend.sh: unknown request $*" >&2; exit 1 ;;
esac
""")
        backend.chmod(0o755)
        (d / "mnt").mkdir(exist_ok=True)
        self.conf = d / "system.conf"
        self.conf.write_text(f"""[system]
compatible=fwguard-bench
bootloader=custom
mountprefix={d}/mnt
data-directory={d}/data
bundle-formats=plain

[handlers]
bootloader-custom-backend={backend}

[keyring]
path={ctx.keys}/ca.cert.pem

[slot.rootfs.0]
device={self.slots[0]}
type=raw
bootname=A

[slot.rootfs.1]
device={self.slots[1]}
type=raw
bootname=B
""")
        bus = d / "bus"
        bus.unlink(missing_ok=True)
        self.env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=f"unix:path={bus}",
                        DBUS_STARTER_BUS_TYPE="session")
        self.dbus = subprocess.Popen(["dbus-daemon", "--session", "--nofork",
                                      f"--address=unix:path={bus}"],
                                     stderr=open(d / "dbus.log", "w"))
        self.wait_for(lambda: bus.exists(), "the private D-Bus bus")
        (self.boot / "primary").write_text("A\n")
        self.svc = subprocess.Popen(["rauc", "-c", str(self.conf), "service",
                                     "--override-boot-slot=A"], env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=open(d / "service.log", "w"))
        self.wait_for(self.service_up, "rauc service on the bus")
        self.service = Service(self.svc.pid)

    def wait_for(self, ready, what):
        deadline = time.time() + 15
        while not ready():
            if time.time() > deadline:
                raise RuntimeError(f"rauc: {what} did not come up")
            time.sleep(0.1)

    def service_up(self) -> bool:
        p = subprocess.run(["dbus-send", "--session", "--print-reply",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.NameHasOwner", "string:de.pengutronix.rauc"],
                           env=self.env, capture_output=True, text=True)
        return "boolean true" in p.stdout

    def setup(self, size_mib, image, fw_image):
        super().setup(size_mib, image, fw_image)
        content = self.dir / "content"
        shutil.rmtree(content, ignore_errors=True)
        content.mkdir()
        os.link(image, content / "rootfs.img")
        (content / "manifest.raucm").write_text(f"""[update]
compatible=fwguard-bench
version={size_mib}.0

[bundle]
format=plain

[image.rootfs]
filename=rootfs.img
""")
        self.bundle = self.dir / "update.raucb"
        self.bundle.unlink(missing_ok=True)
        k = self.ctx.keys
        sh("rauc", "bundle", f"--cert={k}/signer.cert.pem", f"--key={k}/signer.key.pem",
           f"--keyring={k}/ca.cert.pem", content, self.bundle)
        shutil.rmtree(content)

    def prep(self):
        self.slots[1].write_bytes(b"")
        (self.boot / "primary").write_text("A\n")
        for f in self.boot.glob("state.*"):
            f.unlink()

    def command(self):
        return ["rauc", "-c", str(self.conf), "install", str(self.bundle)]

    def artifact(self):
        return self.bundle

    def done_files(self):
        return [self.boot / "primary"]

    def problem(self):
        if not same_prefix(self.slots[1], self.image):
            return "slot rootfs.1 differs from the image"
        primary = (self.boot / "primary").read_text().strip()
        return None if primary == "B" else f"primary slot is {primary!r}"

    def teardown(self):
        for p in (self.svc, self.dbus):
            p.terminate()
            p.wait()


class Swupdate(Case):
    """SWUpdate 2022.12: a CMS-signed .swu (cpio of sw-description, its signature, the image)
    with a raw handler into slot B and `boot_slot=B` in the U-Boot env through libubootenv,
    which reads the compiled-in /etc/fw_env.config. `direct` streams the image into the slot
    (installed-directly); the default first copies it to $TMPDIR (RAM on a router)."""

    def __init__(self, ctx, direct: bool):
        self.name = "swupdate-direct" if direct else "swupdate-tmp"
        super().__init__(ctx)
        self.direct = direct
        self.slot = self.dir / "slot-b"
        self.envimg = self.dir / "uboot.env"
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir(exist_ok=True)
        self.env = dict(os.environ, TMPDIR=str(self.tmp))

    def setup(self, size_mib, image, fw_image):
        super().setup(size_mib, image, fw_image)
        b = self.dir / "swu"
        shutil.rmtree(b, ignore_errors=True)
        b.mkdir()
        os.link(image, b / "fw.img")
        sha = sh("sha256sum", image).split()[0]
        direct = "\n\t\t\tinstalled-directly = true;" if self.direct else ""
        (b / "sw-description").write_text(f"""software =
{{
	version = "{size_mib}.0.0";
	hardware-compatibility = [ "1.0" ];
	images: (
		{{
			filename = "fw.img";
			device = "{self.slot}";
			type = "raw";
			sha256 = "{sha}";{direct}
		}}
	);
	bootenv: (
		{{
			name = "boot_slot";
			value = "B";
		}}
	);
}}
""")
        k = self.ctx.keys
        sh("openssl", "cms", "-sign", "-in", "sw-description", "-out", "sw-description.sig",
           "-signer", k / "signer.cert.pem", "-inkey", k / "signer.key.pem", "-outform", "DER",
           "-nosmimecap", "-binary", cwd=b)
        self.swu = self.dir / "update.swu"
        with open(self.swu, "wb") as out:
            subprocess.run(["cpio", "-o", "-H", "crc", "--quiet"], cwd=b, stdout=out, check=True,
                           input=b"sw-description\nsw-description.sig\nfw.img\n")
        shutil.rmtree(b)

    def prep(self):
        self.slot.write_bytes(b"")
        for f in self.tmp.iterdir():
            f.unlink()
        txt = self.dir / "env.txt"
        txt.write_text("boot_slot=A\n")
        sh("mkenvimage", "-s", "0x4000", "-o", self.envimg, txt)
        host_write("/etc/fw_env.config", f"{self.envimg} 0x0 0x4000\n")

    def command(self):
        return ["swupdate", "-H", "fwguard-bench:1.0", "-k", str(self.ctx.keys / "ca.cert.pem"),
                "-B", "uboot", "-i", str(self.swu)]

    def artifact(self):
        return self.swu

    def done_files(self):
        return [self.envimg]

    def problem(self):
        if not same_prefix(self.slot, self.image):
            return "slot B differs from the image"
        got = env_value(Path("/etc/fw_env.config"), "boot_slot")
        return None if got == "B" else f"env boot_slot is {got!r}"


class Mender(Case):
    """Mender 3.4 standalone (`mender install`): a rootfs-image artifact signed with RSA, slots
    on loop devices (Mender asks the block layer for their size), the active slot found the way
    Mender does it (the device mounted on / and mender_boot_part, here from a `mount` stand-in)
    and the U-Boot env in a file through fw_printenv/fw_setenv wrappers."""

    name = "mender"

    def __init__(self, ctx):
        super().__init__(ctx)
        d = self.dir
        self.bin = d / "bin"
        self.bin.mkdir(exist_ok=True)
        self.data = d / "data"
        self.data.mkdir(exist_ok=True)
        self.envimg = d / "uboot.env"
        self.fwconf = d / "fw_env.config"
        self.fwconf.write_text(f"{self.envimg} 0x0 0x4000\n")
        for tool in ("fw_printenv", "fw_setenv"):
            w = self.bin / tool
            w.write_text(f'#!/bin/sh\nexec /usr/bin/{tool} -c {self.fwconf} "$@"\n')
            w.chmod(0o755)
        self.env = dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}")
        host_write("/etc/mender/artifact_info", "artifact_name=bench-initial\n")
        self.loops = []

    def setup(self, size_mib, image, fw_image):
        super().setup(size_mib, image, fw_image)
        self.detach()
        self.backing = [self.dir / "rootfs-a.img", self.dir / "rootfs-b.img"]
        for f in self.backing:
            f.write_bytes(b"")
            os.truncate(f, size_mib * MIB)
        self.loops = [sh("losetup", "-f", "--show", f).strip() for f in self.backing]
        self.part = [loop.rstrip("/").split("loop")[-1] for loop in self.loops]
        m = self.bin / "mount"
        m.write_text(f'#!/bin/sh\n[ $# -eq 0 ] && {{ echo "{self.loops[0]} on / type ext4 (rw)"; '
                     'exit 0; }\nexec /usr/bin/mount "$@"\n')
        m.chmod(0o755)
        (self.dir / "device_type").write_text("device_type=fwguard-bench\n")
        (self.dir / "mender.conf").write_text(f"""{{
  "RootfsPartA": "{self.loops[0]}",
  "RootfsPartB": "{self.loops[1]}",
  "ArtifactVerifyKey": "{self.ctx.keys}/signer.pub.pem",
  "DeviceTypeFile": "{self.dir}/device_type"
}}
""")
        (self.dir / "empty.conf").write_text("{}\n")
        self.artifact_file = self.dir / "update.mender"
        self.artifact_file.unlink(missing_ok=True)
        sh("mender-artifact", "write", "rootfs-image", "-n", f"bench-{size_mib}",
           "-t", "fwguard-bench", "-f", image, "-k", self.ctx.keys / "signer.rsa.pem",
           "--compression", "none", "--no-progress", "-o", self.artifact_file)

    def prep(self):
        b = self.backing[1]
        size = b.stat().st_size
        os.truncate(b, 0)
        os.truncate(b, size)
        sh("blockdev", "--flushbufs", self.loops[1])  # Mender reads the slot before writing
        for f in ("mender-store", "mender-store-lock", "scripts"):
            p = self.data / f
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        txt = self.dir / "env.txt"
        a = self.part[0]
        txt.write_text(f"mender_boot_part={a}\nmender_boot_part_hex={int(a):X}\n"
                       "upgrade_available=0\nbootcount=0\n")
        sh("mkenvimage", "-s", "0x4000", "-o", self.envimg, txt)

    def command(self):
        return ["mender", "--config", str(self.dir / "mender.conf"), "--fallback-config",
                str(self.dir / "empty.conf"), "--data", str(self.data), "--no-syslog",
                "install", str(self.artifact_file)]

    def artifact(self):
        return self.artifact_file

    def done_files(self):
        return [self.envimg]

    def problem(self):
        sh("blockdev", "--flushbufs", self.loops[1])
        if not same_prefix(self.backing[1], self.image):
            return "slot B differs from the image"
        got = (env_value(self.fwconf, "mender_boot_part"),
               env_value(self.fwconf, "upgrade_available"))
        return None if got == (self.part[1], "1") else f"env mender_boot_part, upgrade_available = {got}"

    def detach(self):
        for loop in self.loops:
            subprocess.run(["losetup", "-d", loop], check=False)
        self.loops = []

    def teardown(self):
        self.detach()
