"""Running one measured command and summarising runs: wall, CPU and peak RSS from
`/usr/bin/time -v`, plus the CPU and peak RSS of a service process that does the work for a
client (RAUC), medians, and the markdown table."""

import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    ok: bool
    wall: float
    cpu: float
    rss_kib: int
    done: float | None  # when the last file the tool writes was written, from its start
    sync_after: float  # how long a `sync` right after the tool takes (what it left unflushed)
    note: str = ""


def proc_ticks(pid: int, children=False) -> int:
    """CPU clock ticks of a process (utime + stime), with its waited-for children's if asked
    (stat fields 14-17)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15 if children else 13])


@dataclass
class Service:
    """A long-running process that does the work (RAUC's D-Bus service): its CPU time and
    peak RSS are added to the client's."""

    pid: int
    ticks0: int = 0

    def start(self):
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # reset VmHWM
        self.ticks0 = proc_ticks(self.pid, children=True)

    def finish(self) -> tuple[float, int]:
        cpu = (proc_ticks(self.pid, children=True) - self.ticks0) / TICK
        hwm = 0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
        return cpu, hwm


def parse_time_v(text: str) -> tuple[float, float, int]:
    """(wall s, CPU s, max RSS KiB) from `/usr/bin/time -v` output."""
    vals = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        vals[key] = value
    h_m_s = vals["Elapsed (wall clock) time (h:mm:ss or m:ss)"].split(":")
    wall = sum(float(x) * 60**i for i, x in enumerate(reversed(h_m_s)))
    cpu = float(vals["User time (seconds)"]) + float(vals["System time (seconds)"])
    return wall, cpu, int(vals["Maximum resident set size (kbytes)"])


def measure(cmd, work: Path, env=None, service: Service | None = None,
            done_files=()) -> tuple[subprocess.CompletedProcess, Run]:
    tfile = work / "time.txt"
    if service:
        service.start()
    start = time.time()
    p = subprocess.run(["/usr/bin/time", "-v", "-o", str(tfile), *cmd],
                       env=env, capture_output=True, text=True)
    wall, cpu, rss = parse_time_v(tfile.read_text())
    if service:
        s_cpu, s_rss = service.finish()
        cpu += s_cpu
        rss = max(rss, s_rss)
    t = time.monotonic()
    os.sync()
    sync_after = time.monotonic() - t
    stamps = [Path(f).stat().st_mtime - start for f in done_files if Path(f).exists()]
    done = max(stamps) if stamps and max(stamps) >= 0 else None
    return p, Run(p.returncode == 0, wall, cpu, rss, done, sync_after)


@dataclass
class Result:
    case: str
    size_mib: int
    cold: bool = False  # the page cache dropped before each run
    runs: list[Run] = field(default_factory=list)

    @property
    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def median(self, attr: str) -> float | None:
        vals = [getattr(r, attr) for r in self.good if getattr(r, attr) is not None]
        return statistics.median(vals) if vals else None

    @property
    def failed(self) -> bool:
        return not self.runs or len(self.good) < len(self.runs)


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def install_table(results: list[Result], size: int, cold: bool, fl: float | None,
                  ref: str) -> list[str]:
    """Markdown rows for one image size, warm or cold: medians, and ratios of wall time to the
    floor `fl` (seconds) and to the reference (fwguard) case."""
    by = {r.case: r for r in results if r.size_mib == size and r.cold == cold}
    rf = by[ref].median("wall") if ref in by else None
    rows = [
        "| case | ok runs | wall s | MiB/s | done at s | CPU s | peak RSS MiB | sync after s "
        f"| wall / floor | wall / {ref} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in by.values():
        if not r.good:
            note = r.runs[0].note if r.runs else "not run"
            rows.append(f"| {r.case} | 0/{len(r.runs)} | FAILED: {note} | | | | | | | |")
            continue
        wall = r.median("wall")
        rate = size / wall if wall else None
        rows.append(
            f"| {r.case} | {len(r.good)}/{len(r.runs)} | {fmt(wall)} | {fmt(rate, 0)} "
            f"| {fmt(r.median('done'))} | {fmt(r.median('cpu'))} "
            f"| {fmt(r.median('rss_kib') / 1024, 1)} | {fmt(r.median('sync_after'), 3)} "
            f"| {fmt(wall / fl if fl else None)} | {fmt(wall / rf if rf else None)} |"
        )
    return rows
