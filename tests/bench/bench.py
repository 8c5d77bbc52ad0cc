"""Install benchmark: fwguard against RAUC, SWUpdate, Mender and the physical floor, in one run
on one machine, written to BENCHMARKS.md. Run it through tests/bench/run.sh, which installs the
tools and builds fwguard; see that script for the options."""

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from cases import CatSync, Ctx, Fwguard, Nginx, OpensslHash, ReadBack, make_keys, sh
from extra import flash_writes, idle_daemon, index_bench
from measure import MIB, Result, Run, fmt, install_table, measure
from peers import Mender, Rauc, Swupdate, restore_host_files

REPO = Path(__file__).resolve().parents[2]
PEERS = ("rauc", "swupdate-direct", "swupdate-tmp", "mender")


def make_images(ctx: Ctx, size_mib: int) -> tuple[Path, Path]:
    """A random payload of `size_mib` MiB (0: 32 KiB, an image too small to checkpoint; what
    the peers install) and the same payload as
    the sim router's U-Boot boots it: a legacy uImage made with mkimage (64 bytes of header in
    front). The payload starts with what the simulated machine reads to run it as firmware
    2.0; the rest is random."""
    d = ctx.work / "img"
    d.mkdir(exist_ok=True)
    payload, image = d / f"payload-{size_mib}.bin", d / f"fw-{size_mib}.img"
    if not image.exists():
        with open(payload, "wb") as f:
            f.write(b"fwguard-sim-kernel\nversion=2.0\nwan=up\nboot=ok\n\0")
            # 64 bytes short: with mkimage's header the image is exactly the size (a boot
            # image of more than 256 MiB is refused as implausible).
            f.write(os.urandom((size_mib * MIB or 32 * 1024) - 64 - f.tell()))
        sh("mkimage", "-q", "-A", "arm", "-O", "linux", "-T", "kernel", "-C", "none",
           "-a", "0x40008000", "-e", "0x40008000", "-n", "sim 2.0", "-d", payload, image)
        sh(ctx.index_tool, "image", image)
    return payload, image


def warm(path: Path):
    with open(path, "rb") as f:
        while f.read(8 * MIB):
            pass


def drop_caches():
    """Empty the page cache (clean pages), so every read of the run comes from the disk."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3")


def run_case(case, size: int, image: Path, fw_image: Path, runs: int, work: Path,
             cold: bool) -> Result:
    res = Result(case.name, size, cold)
    try:
        case.setup(size, image, fw_image)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        res.runs.append(Run(False, 0, 0, 0, None, 0, note=f"setup: {str(e).splitlines()[0]}"))
        print(f"  setup failed: {e}", file=sys.stderr)
        return res
    for _ in range(runs):
        case.prep()
        os.sync()
        if cold:
            drop_caches()
        elif case.artifact():
            warm(case.artifact())
        p, run = measure(case.command(), work, case.env, case.service, case.done_files())
        if not run.ok:
            last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            run.note = f"exit {p.returncode}: {last[:120]}"
            print(f"  {run.note}\n{p.stdout[-2000:]}{p.stderr[-2000:]}", file=sys.stderr)
        elif problem := case.problem():
            run.ok, run.note = False, problem
            print(f"  wrong result: {problem}", file=sys.stderr)
        res.runs.append(run)
        print(f"  wall {run.wall:.2f} s, CPU {run.cpu:.2f} s, RSS {run.rss_kib / 1024:.1f} MiB"
              f"{'' if run.ok else ' FAILED'}", flush=True)
    return res


def machine(build: str) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.machine())
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    mem = next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    fs = sh("findmnt", "-n", "-o", "FSTYPE", "-T", REPO / "target").strip()

    def version(pkg):
        p = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                           capture_output=True, text=True)
        return p.stdout or "?"

    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores{', SHA-NI' if ' sha_ni' in flags else ''}; "
        f"RAM {int(mem) // 1024} MiB; kernel {platform.release()}; work files on {fs}.",
        f"- fwguard {commit} ({build}); "
        f"rauc {version('rauc')}, swupdate {version('swupdate')}, "
        f"mender-client {version('mender-client')}, mender-artifact {version('mender-artifact')}, "
        f"nginx {version('nginx-light') if version('nginx-light') != '?' else version('nginx')}, "
        f"openssl {version('openssl')}.",
    ]


def targets(results, floors, idle_rows, index_line, checkpoints) -> list[str]:
    size = max(r.size_mib for r in results)
    by = {r.case: r for r in results if r.size_mib == size and not r.cold}
    out = []

    def line(what, value, met):
        out.append(f"- {what}: {value}: **{'met' if met else 'not met'}**")

    fw = by.get("fwguard-http")
    if fw and fw.good:
        wall = fw.median("wall")
        if floors.get((size, False)):
            fl = floors[(size, False)]
            line(f"{size} MiB from loopback HTTP (warm), wall ≤ 1.5x the floor",
                 f"{wall:.2f} s = {wall / fl:.2f}x", wall <= 1.5 * fl)
        peers = {c: by[c].median("wall") for c in PEERS if c in by and by[c].good}
        if peers:
            line("below every peer", ", ".join(f"{c} {w:.2f} s" for c, w in peers.items()),
                 all(wall < w for w in peers.values()))
        if "rauc" in peers:
            line("CPU time ≤ RAUC's", f"{fw.median('cpu'):.2f} s vs {by['rauc'].median('cpu'):.2f} s",
                 fw.median("cpu") <= by["rauc"].median("cpu"))
    rss = [(r.case, r.size_mib, max(x.rss_kib for x in r.good) / 1024)
           for r in results if r.case.startswith("fwguard") and r.good]
    if rss:
        line("peak RSS ≤ 8 MiB at every size", ", ".join(f"{c} {s} MiB: {m:.1f}" for c, s, m in rss),
             all(m <= 8 for _, _, m in rss))
    line("checkpoint saves of the state file per install ≤ 2", str(checkpoints),
         checkpoints <= 2)
    cells = [c.strip() for c in idle_rows[-1].strip("|").split("|")]
    line("idle daemon ≤ 4 MiB RSS", f"{cells[1]} MiB", float(cells[1]) <= 4)
    out.append(f"- idle daemon wakeups: {cells[5]} context switches in {cells[0]} s "
               "(its only timer is the 1 h check interval)")
    if index_line:
        ms = float(re.search(r"median ([\d.]+) ms", index_line).group(1))
        ratio = float(re.search(r"ratio ([\d.]+)", index_line).group(1))
        line("10,000-release index verified and searched in ≤ 10x a SHA-512 of its bytes",
             f"{ms:.1f} ms, {ratio:.1f}x", ratio <= 10)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--sim-bin", type=Path, required=True,
                    help="a fwguard built with the demo feature, for `fwguard sim`")
    ap.add_argument("--smoke", action="store_true",
                    help="1 MiB, one run, a 2 s idle window, no index benchmark; fails on any "
                    "wrong result; writes its report under the work directory only")
    ap.add_argument("--sizes", default="64,256", help="image sizes in MiB")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--idle", type=float, default=60, help="idle daemon window, seconds")
    ap.add_argument("--cases", default="", help="only these cases (comma separated)")
    ap.add_argument("--work", type=Path, default=REPO / "target/bench")
    a = ap.parse_args()
    sizes = [1] if a.smoke else [int(s) for s in a.sizes.split(",")]
    runs, idle = (1, 2.0) if a.smoke else (a.runs, a.idle)
    if os.geteuid() != 0:
        sys.exit("bench: needs root (loop devices for Mender, RAUC mounts its bundle, "
                 "SWUpdate reads /etc/fw_env.config)")
    for d in a.work.glob("*"):
        if d.name != "keys":
            shutil.rmtree(d) if d.is_dir() else d.unlink()
    ctx = Ctx(a.work.resolve(), a.bin_dir.resolve(), a.sim_bin.resolve())
    ctx.work.mkdir(parents=True, exist_ok=True)
    make_keys(ctx)
    nginx = Nginx(ctx)
    cases, results, fw = [], [], None
    try:
        makers = {"floor-write": CatSync, "floor-read": ReadBack, "floor-hash": OpensslHash,
                  "fwguard-http": lambda c: Fwguard(c, "http", nginx),
                  "fwguard-file": lambda c: Fwguard(c, "file", None), "rauc": Rauc,
                  "swupdate-direct": lambda c: Swupdate(c, True),
                  "swupdate-tmp": lambda c: Swupdate(c, False), "mender": Mender}
        keep = a.cases.split(",") if a.cases else list(makers)
        for name, make in makers.items():
            if name in keep or name.startswith("floor"):
                cases.append(make(ctx))
        for cold in (False, True):
            for size in sizes:
                image, fw_image = make_images(ctx, size)
                for case in cases:
                    print(f"{size} MiB{' cold' if cold else ''}: {case.name}", flush=True)
                    results.append(run_case(case, size, image, fw_image, runs, ctx.work, cold))
        print("flash writes per step of an update cycle", flush=True)
        fw, cycle_rows, checkpoints = flash_writes(ctx, *make_images(ctx, 1),
                                                   make_images(ctx, 0)[1])
        print(f"idle daemon over {idle:g} s", flush=True)
        # Settled past the 10 s a finished blocking task's thread lingers (tokio), so no
        # thread ends inside the window.
        idle_rows = idle_daemon(ctx, fw, idle, 1 if a.smoke else 12)
        index_line = None if a.smoke else index_bench(REPO)
    finally:
        for c in cases + ([fw] if fw else []):
            c.teardown()
        nginx.stop()
        restore_host_files()

    floors = {}
    for size in sizes:
        for cold in (False, True):
            f = {r.case: r for r in results
                 if r.case.startswith("floor-") and r.size_mib == size and r.cold == cold}
            if all(r.good for r in f.values()):
                io = f["floor-write"].median("wall") + f["floor-read"].median("wall")
                floors[(size, cold)] = max(io, f["floor-hash"].median("wall"))
    md = ["# Benchmarks", "",
          "Generated by `bash tests/bench/run.sh` (do not edit by hand); "
          f"{'a SMOKE run (tiny image, one run): the numbers mean nothing' if a.smoke else f'medians of {runs} runs'}.",
          "", "## Machine", "",
          *machine("x86_64 test build (debug)" if a.smoke else
                   "x86_64 router build: release profile (opt-level z, fat LTO), "
                   "no `demo` feature"), "",
          "## Installing a signed image into the inactive slot", "",
          "Every case puts the same random image into slot B (a file, or a loop device for "
          "Mender), verified, and switches the boot slot to B through a file-backed bootloader "
          "state; the slot is emptied and the state reset before each run. *Warm*: the "
          "artifact is in the page cache; *cold*: the page cache is dropped before each run, "
          "so the artifact is read from the disk too. Wall, CPU (user + system) and peak RSS come from "
          "`/usr/bin/time -v`; for RAUC the D-Bus service does the work, so its CPU time and "
          "peak RSS (VmHWM, reset before each run) are added. *done at*: when the last "
          "bootloader-state file was written, from the start (SWUpdate's client polls once a "
          "second, so it exits later than it finishes). *sync after*: a `sync` right after "
          "the tool, i.e. what it left unflushed. *floor*: what the work physically needs, each "
          "part measured here: writing the image to the disk (`floor-write`: `cat > slot && "
          "sync`) and reading it back from the disk (`floor-read`: the slot's pages dropped "
          "from the cache, then `cat slot`), or hashing it once with SHA-256 (`floor-hash`: "
          "`openssl dgst -sha256`), whichever takes longer (the hash can overlap the I/O). "
          "fwguard hashes the stream once with SHA-256 on a second core while it writes, "
          "drops the slot's pages from the cache, and reads it back from the disk comparing "
          "a CRC-32 per MiB with the stream's.", ""]
    for cold in (False, True):
        for size in sizes:
            fl = floors.get((size, cold))
            md += [f"### {size} MiB, {'cold' if cold else 'warm'} (floor {fmt(fl)} s)", "",
                   *install_table(results, size, cold, fl, "fwguard-http"), ""]
    md += ["## Flash writes in an update cycle", "",
           "fwguard on the simulated router under `strace`: write calls to the U-Boot env, "
           "bytes written to each slot, write calls into fwguard's state directory (flash on "
           "a router) and how many times the state file was replaced (saves: each is a write "
           "of the file and a rename); the runtime directory is tmpfs on a router. The update "
           "of a 32 KiB image makes no checkpoint: the saves beyond its own are the "
           "download's checkpoints.", "", *cycle_rows, "",
           "## Idle daemon", "",
           "`fwguard daemon` on an up-to-date router, check interval 1 h, after a settling "
           "time; context switches of all its threads (each wakeup is one).", "", *idle_rows, ""]
    if index_line:
        md += ["## Index", "", f"`cargo bench --bench index`: {index_line}", ""]
    if not a.smoke:
        md += ["## Targets", "", *targets(results, floors, idle_rows, index_line, checkpoints), ""]
    out = ctx.work / "BENCHMARKS.md" if a.smoke else REPO / "BENCHMARKS.md"
    out.write_text("\n".join(md))
    print("\n".join(md))
    print(f"written to {out}")
    failed = [f"{r.case} at {r.size_mib} MiB{' cold' if r.cold else ''}"
              for r in results if r.failed]
    if failed:
        sys.exit(f"bench: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
