"""The work every case does: put one signed N MiB image into the inactive slot B, verified,
and switch the boot slot to B. The base class, the physical floor, and fwguard (from a
loopback nginx and from a local file)."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from measure import MIB


def sh(*cmd, env=None, cwd=None) -> str:
    """Run a setup step; its failure stops the benchmark with the tool's own message."""
    p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stderr}{p.stdout}")
    return p.stdout


def same_prefix(path: Path, image: Path) -> bool:
    """Whether `path` starts with the bytes of `image`."""
    with open(path, "rb") as a, open(image, "rb") as b:
        while True:
            want = b.read(4 * MIB)
            if not want:
                return True
            if a.read(len(want)) != want:
                return False


def env_value(config: Path, name: str) -> str | None:
    """A U-Boot env variable read with the real fw_printenv."""
    p = subprocess.run(["fw_printenv", "-c", str(config), "-n", name],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ctx:
    """What the cases share: the work directory, fwguard's binaries (the one measured, and
    one with the `demo` feature whose `fwguard sim` makes and boots the simulated router),
    the keys."""

    def __init__(self, work: Path, bin_dir: Path, sim_bin: Path):
        self.work = work
        self.fwguard = bin_dir / "fwguard"
        self.sim = sim_bin
        self.index_tool = bin_dir / "fwguard-index"
        self.keys = work / "keys"
        self.www = work / "www"


class Case:
    name = ""
    service = None  # a measure.Service when a daemon does the work
    env = None

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.dir = ctx.work / self.name
        self.dir.mkdir(parents=True, exist_ok=True)

    def setup(self, size_mib: int, image: Path, fw_image: Path):
        """Build this tool's artifact for one image size (not measured)."""
        self.image = image

    def prep(self):
        """Empty the target slot and set the bootloader back to slot A."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def artifact(self) -> Path | None:
        """The file the command reads, warmed into the page cache before each run."""
        return None

    def done_files(self) -> list[Path]:
        return []

    def problem(self) -> str | None:
        """None when the slot holds the image and the boot slot is switched; else what is wrong."""
        return None

    def teardown(self):
        pass


class CatSync(Case):
    """The write floor: the bytes into the slot file and onto the disk."""

    name = "floor-write"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.slot = self.dir / "slot"

    def prep(self):
        self.slot.write_bytes(b"")

    def command(self):
        return ["sh", "-c", f"cat '{self.image}' > '{self.slot}' && sync"]

    def artifact(self):
        return self.image

    def problem(self):
        return None if same_prefix(self.slot, self.image) else "slot differs from the image"


class ReadBack(Case):
    """The read-back floor: the slot's bytes read back from the disk (its cached pages
    dropped first, as fwguard does), and nothing else done with them."""

    name = "floor-read"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.slot = self.dir / "slot"

    def setup(self, size_mib, image, fw_image):
        super().setup(size_mib, image, fw_image)
        shutil.copyfile(image, self.slot)
        os.sync()

    def command(self):
        return ["sh", "-c", f"dd if='{self.slot}' iflag=nocache count=0 status=none && "
                f"cat '{self.slot}' > /dev/null"]

    def problem(self):
        return None if same_prefix(self.slot, self.image) else "slot differs from the image"


class OpensslHash(Case):
    """The hash floor: SHA-256 of the image with OpenSSL (SHA-NI where the CPU has it)."""

    name = "floor-hash"

    def setup(self, size_mib, image, fw_image):
        super().setup(size_mib, image, fw_image)
        self.expect = sh("sha256sum", image).split()[0]
        self.out = self.dir / "out"

    def command(self):
        return ["sh", "-c", f"openssl dgst -sha256 -r '{self.image}' > '{self.out}'"]

    def artifact(self):
        return self.image

    def problem(self):
        got = self.out.read_text().split()[0] if self.out.exists() else ""
        return None if got == self.expect else f"openssl printed {got!r}"


class Nginx:
    """nginx on 127.0.0.1 serving the benchmark's www directory (sendfile, no access log)."""

    def __init__(self, ctx: Ctx):
        d = ctx.work / "nginx"
        for sub in ("tmp", "logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        temps = "\n".join(f"  {k}_temp_path {d}/tmp/{k};"
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = d / "nginx.conf"
        conf.write_text(f"""{user}worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  default_type application/octet-stream;
{temps}
  server {{
    listen 127.0.0.1:{self.port};
    root {ctx.www};
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", str(d), "-e", str(d / "logs/error.log"),
                                      "-c", str(conf)])
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"nginx did not start: {(d / 'logs/error.log').read_text()}")
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Fwguard(Case):
    """fwguard on a simulated router (slot files and a U-Boot env image in the real format):
    fetch and verify the signed index, stream the image into slot B while hashing it, read it
    back and verify it, switch the env in one write, and ask for the reboot."""

    def __init__(self, ctx, source: str, nginx: Nginx | None):
        self.name = f"fwguard-{source}"
        super().__init__(ctx)
        self.source, self.nginx = source, nginx
        self.router = self.dir / "router"
        self.config = self.dir / "config.toml"
        self.env_config = self.dir / "fw_env.config"
        # In RAM, as on a router: fwguard writes runtime files on tmpfs only.
        self.run = Path("/dev/shm") / f"fwguard-bench-{os.getpid()}-{self.name}"
        self.pristine_state = None  # the state after a first check, once setup made it

    def write_config(self, index_url: str, extra: str = ""):
        """The `uboot` profile over the simulated router's files (the router build has no
        `sim` profile): its env in U-Boot's format, its slots, its kernel command line and
        boot id; the state directory on a data partition of its own."""
        self.index_url = index_url
        r = self.router
        proc = self.dir / "proc"
        (proc / "self").mkdir(parents=True, exist_ok=True)
        (proc / "sys/kernel/random").mkdir(parents=True, exist_ok=True)
        boot_id = proc / "sys/kernel/random/boot_id"
        if not boot_id.is_symlink():
            boot_id.symlink_to(r / "boot_id")
        st = os.stat(self.dir)
        (proc / "self/mountinfo").write_text(
            "15 1 0:13 / / rw shared:1 - overlay overlay rw\n"
            f"30 15 {os.major(st.st_dev)}:{os.minor(st.st_dev)} / {self.dir} rw shared:30 - "
            "ext4 /dev/sda4 rw\n")
        self.config.write_text(f"""[agent]
state_dir = "{self.dir}/state"
runtime_dir = "{self.run}"
{extra}
[index]
url = "{index_url}"
trusted_key_files = ["{self.ctx.keys}/fwguard.pub"]

[board]
profile = "uboot"
id = "sim"
env_config = "{self.env_config}"
slot_a = "{r}/slot-a.img"
slot_b = "{r}/slot-b.img"
cmdline = "{r}/cmdline"
proc = "{proc}"
reboot_command = ["touch", "{r}/reboot-requested"]

[trial]
soak = "0s"
""")

    def setup(self, size_mib, image, fw_image):
        super().setup(size_mib, image, fw_image)
        self.fw_image, self.slot_size = fw_image, (size_mib + 1) * MIB
        self.env_config.write_text(f"{self.router}/env.img 0x0 0x4000\n")
        www = self.ctx.www / self.name
        www.mkdir(parents=True, exist_ok=True)
        img = www / fw_image.name
        if img.exists():
            img.unlink()
        os.link(fw_image, img)
        if self.source == "http":
            base = f"http://127.0.0.1:{self.nginx.port}/{self.name}"
        else:
            base = www.as_uri()
        # One router, made before the index is signed (the index must not be older than the
        # running firmware's build time); each run starts from a copy of it.
        self.pristine = self.dir / "pristine"
        shutil.rmtree(self.pristine, ignore_errors=True)
        sh(self.ctx.sim, "sim", "create", self.pristine, "--slot-size", self.slot_size)
        # The running firmware (1.0, in slot A: a uImage, its 64-byte header giving its
        # length) is in the index too, as a vendor's index lists the releases devices run.
        slot_a = (self.pristine / "slot-a.img").read_bytes()
        old = www / "fw-1.0.img"
        old.write_bytes(slot_a[:64 + int.from_bytes(slot_a[12:16], "big")])
        index = www / "index.toml"
        index.unlink(missing_ok=True)
        t = self.ctx.index_tool
        sh(t, "new", index)
        for version, image in (("1.0", old), ("2.0", img)):
            sh(t, "add-release", index, "--version", version, "--board", "sim",
               "--image", image, "--url", f"{base}/{image.name}")
        sh(t, "sign", "-s", self.ctx.keys / "fwguard.sec", index)
        self.write_config(f"{base}/index.toml")
        # A router that has run fwguard before: its state knows the running firmware
        # (identified by a first check), so the update does not identify it again.
        self.pristine_state = None
        self.prep()
        sh(self.ctx.fwguard, "-c", self.config, "check")
        self.pristine_state = self.dir / "pristine-state"
        shutil.rmtree(self.pristine_state, ignore_errors=True)
        shutil.copytree(self.dir / "state", self.pristine_state, symlinks=True)

    def prep(self):
        for d in (self.dir / "router", self.dir / "state", self.run):
            shutil.rmtree(d, ignore_errors=True)
        sh("cp", "-a", "--sparse=always", self.pristine, self.router)
        sh(self.ctx.sim, "sim", "reboot", self.router)
        if self.pristine_state:
            sh("cp", "-a", self.pristine_state, self.dir / "state")

    def command(self):
        return [str(self.ctx.fwguard), "-c", str(self.config), "update"]

    def teardown(self):
        shutil.rmtree(self.run, ignore_errors=True)

    def artifact(self):
        return self.fw_image

    def done_files(self):
        return [self.router / "env.img"]

    def problem(self):
        if not same_prefix(self.router / "slot-b.img", self.fw_image):
            return "slot B differs from the image"
        got = (env_value(self.env_config, "boot_slot"),
               env_value(self.env_config, "upgrade_available"))
        return None if got == ("B", "1") else f"env boot_slot, upgrade_available = {got}"


def make_keys(ctx: Ctx):
    """fwguard's ed25519 index key; an RSA CA and signer (EKU codeSigning and emailProtection,
    as SWUpdate's default purpose check wants) shared by RAUC, SWUpdate and Mender."""
    k = ctx.keys
    if (k / "signer.rsa.pem").exists():
        return
    k.mkdir(parents=True, exist_ok=True)
    sh(ctx.index_tool, "keygen", "-s", k / "fwguard.sec", "-p", k / "fwguard.pub")
    (k / "ext.cnf").write_text("""[signer]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning,emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
""")
    sh("openssl", "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "3650",
       "-subj", "/CN=fwguard bench CA", "-keyout", k / "ca.key.pem", "-out", k / "ca.cert.pem",
       "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sh("openssl", "req", "-newkey", "rsa:4096", "-nodes", "-subj", "/CN=fwguard bench signer",
       "-keyout", k / "signer.key.pem", "-out", k / "signer.csr")
    sh("openssl", "x509", "-req", "-in", k / "signer.csr", "-CA", k / "ca.cert.pem",
       "-CAkey", k / "ca.key.pem", "-CAcreateserial", "-days", "3650",
       "-out", k / "signer.cert.pem", "-extfile", k / "ext.cnf", "-extensions", "signer")
    sh("openssl", "rsa", "-in", k / "signer.key.pem", "-pubout", "-out", k / "signer.pub.pem")
    # mender-artifact reads only PKCS#1 ("BEGIN RSA PRIVATE KEY") RSA keys
    sh("openssl", "rsa", "-in", k / "signer.key.pem", "-traditional",
       "-out", k / "signer.rsa.pem")
