"""The measurements beside the install race: what fwguard writes to flash in each step of an
update cycle (from strace), the idle daemon's memory and wakeups, and the index benchmark."""

import re
import subprocess
import time
from pathlib import Path

from cases import Fwguard, sh
from measure import TICK, proc_ticks

WRITES = "write,pwrite64,writev,pwritev,pwritev2,rename,renameat,renameat2,ftruncate,fallocate"
LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")


def strace_writes(cmd, out: Path) -> list[tuple[str, str, int]]:
    """Run `cmd` under strace; (syscall, path, result) of every successful write-like call.
    Calls split across threads (`<unfinished ...>` / `resumed>`) are joined first."""
    p = subprocess.run(["strace", "-f", "-y", "-qq", "-s", "0", "-e", f"trace={WRITES}",
                        "-o", str(out), *map(str, cmd)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stderr}")
    pending, calls = {}, []
    for line in out.read_text().splitlines():
        pid = line.split(None, 1)[0]
        if line.endswith("<unfinished ...>"):
            pending[pid] = line[: -len("<unfinished ...>")]
            continue
        if "resumed>" in line:
            line = pending.pop(pid, "") + line.split("resumed>", 1)[1]
        m = LINE.match(line)
        if not m or int(m.group(4)) < 0:
            continue
        name, args = m.group(2), m.group(3)
        if name.startswith("rename"):
            # The target: its name, after its directory's descriptor for renameat.
            path = re.findall(r'"([^"]*)"', args)[-1]
            dirs = re.findall(r"\d+<([^>]*)>", args)
            if dirs and not path.startswith("/"):
                path = f"{dirs[-1]}/{path}"
        else:
            fd_path = re.match(r"\d+<([^>]*)>", args)
            path = fd_path.group(1) if fd_path else ""
        calls.append((name, path, int(m.group(4))))
    return calls


def classify(fw: Fwguard, calls) -> dict[str, int]:
    """Counts per place: env writes, bytes to each slot, state-file changes (all on flash on a
    router), and runtime-directory writes (tmpfs on a router)."""
    c = {"env": 0, "slot-a": 0, "slot-b": 0, "state": 0, "saves": 0, "runtime": 0}
    for name, path, result in calls:
        if path.endswith("/router/env.img"):
            c["env"] += 1
        elif path.endswith("/router/slot-a.img"):
            c["slot-a"] += result if "write" in name else 0
        elif path.endswith("/router/slot-b.img"):
            c["slot-b"] += result if "write" in name else 0
        elif path.startswith(f"{fw.dir}/state/") and not path.endswith("/lock"):
            if name.startswith("rename") and path.endswith("/state.json"):
                c["saves"] += 1
            else:
                c["state"] += 1
        elif path.startswith(f"{fw.run}/"):
            c["runtime"] += 1
    return c


def flash_writes(ctx, image: Path, fw_image: Path,
                 small_image: Path) -> tuple[Fwguard, list[str], int]:
    """An update cycle step by step on a sim router, as markdown rows, and the checkpoint
    saves of its update (beyond those of an update of `small_image`, too small to
    checkpoint); the router is left running 2.0, committed."""
    small = Fwguard(ctx, "small", None)
    small.setup(1, small_image, small_image)
    small.prep()
    small_update = classify(small, strace_writes([ctx.fwguard, "-c", small.config, "update"],
                                                 small.dir / "strace.txt"))
    fw = Fwguard(ctx, "cycle", None)
    fw.setup(1, image, fw_image)
    fw.prep()
    fwg = [ctx.fwguard, "-c", fw.config]
    steps = [
        ("update: install 2.0 into slot B, switch, reboot", [*fwg, "update"], "reboot"),
        ("first boot of 2.0 (trial): `assess` commits", [*fwg, "assess"], None),
        ("`check` with nothing newer in the index", [*fwg, "check"], None),
        ("`assess` again on the committed boot", [*fwg, "assess"], "reboot"),
        ("next boot, healthy, nothing to do: `assess`", [*fwg, "assess"], None),
        ("`check` after that boot", [*fwg, "check"], None),
    ]
    rows = ["| step | env writes | slot A bytes | slot B bytes | state-file writes "
            "| state saves | runtime-dir writes (tmpfs) |", "|---|---:|---:|---:|---:|---:|---:|"]
    row = lambda what, c: (f"| {what} | {c['env']} | {c['slot-a']} | {c['slot-b']} "  # noqa: E731
                           f"| {c['state']} | {c['saves']} | {c['runtime']} |")
    rows.append(row(f"update of a {small_image.stat().st_size // 1024} KiB image "
                    "(no checkpoint)", small_update))
    counts = []
    for i, (what, cmd, after) in enumerate(steps):
        c = classify(fw, strace_writes(cmd, fw.dir / f"strace-{i}.txt"))
        counts.append(c)
        rows.append(row(what, c))
        if after == "reboot":
            sh(ctx.sim, "sim", "reboot", fw.router)
    if counts[0]["slot-a"] or counts[0]["env"] < 1 or counts[0]["slot-b"] < fw_image.stat().st_size:
        raise RuntimeError(f"the update step wrote unexpectedly: {counts[0]}")
    for c in counts[2:]:
        if c["env"] or c["slot-a"] or c["slot-b"] or c["state"]:
            raise RuntimeError(f"a step with nothing to do wrote to flash: {c}")
    small.teardown()
    return fw, rows, counts[0]["saves"] - small_update["saves"]


def idle_daemon(ctx, fw: Fwguard, seconds: float, settle: float) -> list[str]:
    """Start the daemon on a router that is up to date (check interval 1 h) and watch it for
    `seconds`: RSS, threads, CPU time and context switches (wakeups) of all its threads."""
    fw.write_config(fw.index_url, 'check_interval = "1h"')
    d = subprocess.Popen([str(ctx.fwguard), "-c", str(fw.config), "daemon"],
                         stdout=subprocess.DEVNULL, stderr=open(fw.dir / "daemon.log", "w"))
    try:
        time.sleep(settle)
        if d.poll() is not None:
            raise RuntimeError(f"the daemon exited: {(fw.dir / 'daemon.log').read_text()}")
        ctx0, cpu0 = ctxt_switches(d.pid), proc_ticks(d.pid)
        time.sleep(seconds)
        ctx1, cpu1 = ctxt_switches(d.pid), proc_ticks(d.pid)
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{d.pid}/status").read_text().splitlines())
    finally:
        d.terminate()
        d.wait()
    kib = lambda k: int(status[k].split()[0])  # noqa: E731
    return [
        "| idle window s | RSS MiB | peak RSS MiB | threads | CPU s in window "
        "| context switches in window |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {seconds:g} | {kib('VmRSS') / 1024:.2f} | {kib('VmHWM') / 1024:.2f} "
        f"| {status['Threads'].strip()} | {(cpu1 - cpu0) / TICK:.2f} | {ctx1 - ctx0} |",
    ]


def ctxt_switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def index_bench(repo: Path) -> str:
    """`cargo bench --bench index`: verify + select on a 10,000-release signed index."""
    p = subprocess.run(["cargo", "bench", "--bench", "index"], cwd=repo,
                       capture_output=True, text=True)
    lines = [line for line in p.stdout.splitlines() if line.startswith("index verify+select")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"cargo bench --bench index failed:\n{p.stderr[-2000:]}")
    return lines[0]
