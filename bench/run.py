"""``make bench``: proxytrace analyze against the tools a user would pick instead, side by side.

1. Generates the captures (bench.gen, deterministic; cached under bench/data/, git-ignored) and
   compiles the analyzer's bytecode (an editable install under PYTHONDONTWRITEBYTECODE would
   otherwise compile every module at every start, which no installed copy does).
2. Runs every tool as a child process; a reference and proxytrace on the same file alternate
   (A B, B A, ...), so load from other jobs on the machine falls on both alike. Reports the
   median wall time, the median CPU time (user + system, from wait4: less sensitive than wall
   time to other load), the child's peak RSS, and the median of the per-round ratios.
3. Prints the targets table (each target, what was measured, met or not), user-space
   instruction counts from valgrind's cachegrind where valgrind is installed (perf counters are
   often missing on virtual machines), the load average while measuring, and checks every tool
   found the same contacts (DNS names, TLS SNIs, HTTP hosts). The exit status is 1 only when a
   tool failed or found different contacts: timings depend on the machine and its load, so
   unmet targets are reported, not fatal.

``python -m bench.run [--runs N] [--quick]``; --quick (about 30 s) measures proxytrace against
tcpdump and the two-file run only.
The whole run took 6.5-7 minutes on the shared 2-core machine at a load average of 3-12, and
3.5 minutes at 1.5 (tshark at 2M packets is most of it), plus about 30 s to generate the
cached captures the first time; the 20M-packet capture (2.9 GB) is made in a temporary folder
every run and removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .loops import TSHARK_FILTER

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
GEN_VERSION = 3  # bump when the generator's output changes: cached files are then rebuilt
SIZES = {"20k": 20_000, "200k": 200_000, "1M": 1_000_000, "2M": 2_000_000}
BIG = 20_000_000          # packets of the capture for the flat-RSS check (made per run)
BIG_TILE = 2_000_000      # ... as 10 time-shifted copies of a capture of this many packets
BULK_CAPLEN = 128         # bytes captured of each bulk packet of that capture (see gen.Generator)
PY = sys.executable
_SCRIPT = Path(PY).parent / "proxytrace"  # the installed entry point, as users run it
PROXYTRACE = ([str(_SCRIPT)] if _SCRIPT.exists()
              else [PY, "-c", "from analyzer.cli import main; main()"]) + ["analyze"]
ANALYZE = [*PROXYTRACE, "-q", "--all", "-f", "jsonl"]
TSHARK = ["tshark", "-n", "-Y", TSHARK_FILTER, "-T", "fields", "-E", "separator=|",
          "-e", "dns.qry.name", "-e", "tls.handshake.extensions_server_name", "-e", "http.host"]


@dataclass
class Result:
    tool: str
    size: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    contacts: dict[str, list[str]] | None = None
    failed: str | None = None

    @property
    def runs(self) -> int:
        return len(self.walls)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls) if self.walls else float("nan")

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus) if self.cpus else float("nan")

    @property
    def rss_mb(self) -> float:
        return max(self.rss) if self.rss else float("nan")


@dataclass
class Pair:
    """A reference and proxytrace measured in alternation; ratios are reference ÷ proxytrace,
    the median of the per-round ratios."""

    ref: Result
    ours: Result

    def _ratio(self, a: list[float], b: list[float]) -> float:
        ratios = [x / y for x, y in zip(a, b, strict=False) if y > 0]
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def wall_ratio(self) -> float:
        return self._ratio(self.ref.walls, self.ours.walls)

    @property
    def cpu_ratio(self) -> float:
        return self._ratio(self.ref.cpus, self.ours.cpus)


@dataclass
class Target:
    name: str
    measured: str
    goal: str
    met: bool


class ToolFailed(Exception):
    pass


def capture(size: str, seed: int = 1) -> Path:
    suffix = "" if seed == 1 else f"-s{seed}"
    path = DATA / f"mix-v{GEN_VERSION}-{size}{suffix}.pcap"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        t0 = time.monotonic()
        _generate([str(tmp), str(SIZES[size]), str(seed)])
        tmp.rename(path)
        print(f"generated {path.relative_to(REPO)}: {SIZES[size]:,} packets, "
              f"{path.stat().st_size / 1e6:,.0f} MB in {time.monotonic() - t0:.1f} s", flush=True)
    return path


def _generate(args: list[str]) -> None:
    """bench.gen in a child process: this process stays small, and so does the peak RSS every
    later child reports (on Linux a child's ru_maxrss starts from its parent's size at the
    fork)."""
    subprocess.run([PY, "-m", "bench.gen", *args], cwd=REPO, check=True,  # noqa: S603
                   stdout=subprocess.DEVNULL)


GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def run_child(cmd: list[str]) -> tuple[float, float, float, bytes]:
    """(wall s, cpu s, peak RSS MB, stdout) of one run of ``cmd``.

    The peak RSS comes from GNU time (Debian's ``time``) when it is installed: on Linux a
    child's ru_maxrss starts from its parent's size at the fork, and this process holds the
    tools' output, so wait4's figure would show this process's size for a small tool (tcpdump
    uses about 6 MB). time forks from a process of a few MB."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as rss_file:
        full = ([GNU_TIME, "-f", "%M", "-o", rss_file.name, *cmd] if GNU_TIME else cmd)
        t0 = time.monotonic()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE,  # noqa: S603 - fixed argument lists
                                stderr=subprocess.DEVNULL, cwd=REPO)
        out = proc.stdout.read() if proc.stdout is not None else b""
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        code = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / 1024
        if GNU_TIME:
            text = rss_file.read().strip().splitlines()
            if text and text[-1].isdigit():
                peak = int(text[-1]) / 1024
            elif code == 0:
                code = -1  # time could not report: treat as a failed run
    if code not in (0, 3):
        raise ToolFailed(f"{' '.join(cmd)} failed with status {code}")
    return wall, usage.ru_utime + usage.ru_stime, peak, out


def _once(res: Result, cmd: list[str]) -> bytes:
    if res.failed:
        return b""
    try:
        wall, cpu, peak, out = run_child(cmd)
    except ToolFailed as exc:
        res.failed = str(exc)
        return b""
    res.walls.append(wall)
    res.cpus.append(cpu)
    res.rss.append(peak)
    return out


def _show(res: Result) -> None:
    if res.failed:
        print(f"  {res.tool:<26} {res.size:>9}: FAILED: {res.failed}", flush=True)
        return
    print(f"  {res.tool:<26} {res.size:>9}: wall {res.wall:7.2f} s  cpu {res.cpu:7.2f} s  "
          f"rss {res.rss_mb:6.0f} MB  ({res.runs} run{'s' if res.runs > 1 else ''})", flush=True)


Parse = Callable[[bytes], dict[str, list[str]]]


def measure(tool: str, size: str, cmd: list[str], runs: int, parse: Parse | None = None) -> Result:
    res = Result(tool, size)
    out = b""
    for _ in range(runs):
        out = _once(res, cmd)
    if parse is not None and not res.failed:
        res.contacts = parse(out)
    _show(res)
    return res


def alternate(ref_tool: str, ref_cmd: list[str], ours_tool: str, ours_cmd: list[str],
              size: str, runs: int, ref_parse: Parse | None = None) -> Pair:
    """Run the reference and proxytrace in turn, ``runs`` rounds, the order flipping each round."""
    ref, ours = Result(ref_tool, size), Result(ours_tool, size)
    ref_out = ours_out = b""
    for i in range(runs):
        if i % 2 == 0:
            ours_out = _once(ours, ours_cmd) or ours_out
            ref_out = _once(ref, ref_cmd) or ref_out
        else:
            ref_out = _once(ref, ref_cmd) or ref_out
            ours_out = _once(ours, ours_cmd) or ours_out
    if not ours.failed and ours_tool == "proxytrace analyze":
        ours.contacts = proxytrace_contacts(ours_out)
    if ref_parse is not None and not ref.failed:
        ref.contacts = ref_parse(ref_out)
    _show(ours)
    _show(ref)
    return Pair(ref, ours)


def together(cmds: list[list[str]]) -> float:
    """Wall seconds until every one of ``cmds``, started at once, has finished."""
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL,  # noqa: S603 - fixed lists
                              stderr=subprocess.DEVNULL, cwd=REPO) for cmd in cmds]
    codes = [proc.wait() for proc in procs]
    if any(code not in (0, 3) for code in codes):
        raise ToolFailed(f"{' '.join(cmds[0])} ... failed")
    return time.monotonic() - t0


def floor_ratio(one_cmd: list[str], cmds: list[list[str]], runs: int) -> tuple[float, float]:
    """What the machine allows for the two-file row: two separate single-capture runs started at
    once against one alone, alternating; (median ratio, median wall of the pair)."""
    ratios, walls = [], []
    for i in range(runs):
        if i % 2 == 0:
            both = together(cmds)
            alone = together([one_cmd])
        else:
            alone = together([one_cmd])
            both = together(cmds)
        ratios.append(both / alone)
        walls.append(both)
    return statistics.median(ratios), statistics.median(walls)


def proxytrace_contacts(out: bytes) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {"dns": set(), "tls": set(), "http": set()}
    for line in out.splitlines():
        rec = json.loads(line)
        if rec.get("layer") in found and rec.get("host"):
            found[rec["layer"]].add(rec["host"])
    return {k: sorted(v) for k, v in found.items()}


def tshark_contacts(out: bytes) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {"dns": set(), "tls": set(), "http": set()}
    for line in out.decode("utf-8", "replace").splitlines():
        parts = (line.split("|") + ["", "", ""])[:3]
        for layer, value in zip(("dns", "tls", "http"), parts, strict=True):
            for name in value.split(","):
                if name:
                    found[layer].add(name.lower())
    return {k: sorted(v) for k, v in found.items()}


def loop_contacts(out: bytes) -> dict[str, list[str]]:
    data: dict[str, list[str]] = json.loads(out)
    return data


def instructions(cmd: list[str]) -> int | None:
    """User-space instructions of ``cmd`` and its children, counted by cachegrind."""
    if shutil.which("valgrind") is None:
        return None
    proc = subprocess.run(  # noqa: S603 - fixed argument lists
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--trace-children=yes",
         "--cachegrind-out-file=/dev/null", *cmd],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, check=False)
    total = 0
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        if "I   refs:" in line or "I    refs:" in line:
            total += int(line.rsplit(":", 1)[1].replace(",", "").strip())
    return total or None


def big_capture(folder: Path) -> Path:
    """A 20M-packet capture in ``folder``: 10 time-shifted copies of a 2M-packet mix whose bulk
    packets are captured only in part (a real pcap; tcpdump reads it)."""
    t0 = time.monotonic()
    path = folder / "mix-20M.pcap"
    _generate(["--tiled", str(path), str(BIG_TILE), str(BIG // BIG_TILE), str(BULK_CAPLEN)])
    print(f"generated {path}: {BIG:,} packets, {path.stat().st_size / 1e6:,.0f} MB in "
          f"{time.monotonic() - t0:.1f} s", flush=True)
    return path


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run")
    ap.add_argument("--runs", type=int, default=5, help="rounds of the fast tools (median)")
    ap.add_argument("--slow-runs", type=int, default=3, help="rounds of tshark at 200k packets")
    ap.add_argument("--quick", action="store_true", help="proxytrace and tcpdump only")
    args = ap.parse_args(argv)
    started = time.monotonic()
    files = {size: capture(size) for size in SIZES}
    second = capture("1M", seed=2)
    subprocess.run([PY, "-m", "compileall", "-q", "analyzer"], cwd=REPO,  # noqa: S603
                   stdout=subprocess.DEVNULL, check=True)
    have = {tool: shutil.which(tool) is not None for tool in ("tcpdump", "tshark")}
    loads = [f"start: {load()}"]
    results: list[Result] = []
    pairs: dict[str, Pair] = {}
    targets: list[Target] = []

    print("measuring (median of runs; cpu = user + system of the child):", flush=True)
    for size in ("20k", "1M"):
        results.append(measure("proxytrace analyze", size, [*ANALYZE, str(files[size])],
                               args.runs, proxytrace_contacts))
    if have["tcpdump"]:
        for size, goal in (("2M", 1.5), ("200k", 2.5)):
            pair = alternate("tcpdump -r -w /dev/null", ["tcpdump", "-r", str(files[size]), "-w",
                                                         "/dev/null"],
                             "proxytrace analyze", [*ANALYZE, str(files[size])], size, args.runs)
            pairs[f"tcpdump {size}"] = pair
            slower = 1 / pair.wall_ratio
            targets.append(Target(
                f"tcpdump -r FILE -w /dev/null, {size}",
                f"{slower:.2f}x tcpdump's wall ({pair.ours.wall:.2f} s vs {pair.ref.wall:.2f} s; "
                f"cpu {1 / pair.cpu_ratio:.2f}x)",
                f"analyze within {goal}x", slower <= goal))
    loads.append(f"after tcpdump: {load()}")
    big_rss: float | None = None
    if not args.quick:
        if have["tshark"]:
            for size, runs in (("200k", args.slow_runs), ("2M", 2)):
                pair = alternate("tshark -Y (fields)", [*TSHARK, "-r", str(files[size])],
                                 "proxytrace analyze", [*ANALYZE, str(files[size])], size, runs,
                                 tshark_contacts)
                pairs[f"tshark {size}"] = pair
                goal = 30.0 if size == "2M" else None
                targets.append(Target(
                    f"tshark field extraction, {size}",
                    f"{pair.wall_ratio:.1f}x faster than tshark ({pair.ref.wall:.2f} s vs "
                    f"{pair.ours.wall:.2f} s; cpu {pair.cpu_ratio:.1f}x)",
                    f"at least {goal:.0f}x faster" if goal else "reported",
                    pair.wall_ratio >= goal if goal else True))
            loads.append(f"after tshark: {load()}")
        with tempfile.TemporaryDirectory(prefix="proxytrace-bench-") as tmp:
            big = big_capture(Path(tmp))
            res = measure("proxytrace analyze", "20M (cut)", [*ANALYZE, str(big)], 1)
            results.append(res)
            big_rss = res.rss_mb
        results.append(measure("dpkt loop", "1M", [PY, "-m", "bench.loops", "dpkt",
                                                   str(files["1M"])], 1, loop_contacts))
        if have["tshark"]:
            results.append(measure("pyshark", "20k", [PY, "-m", "bench.loops", "pyshark",
                                                      str(files["20k"])], 1, loop_contacts))
        results.append(measure("scapy loop", "20k", [PY, "-m", "bench.loops", "scapy",
                                                     str(files["20k"])], 1, loop_contacts))
    # Two captures at once: one worker process each (the default --workers is the CPU count).
    par = alternate("analyze 1 file", [*ANALYZE, str(files["1M"])],
                    "analyze 2 files at once", [*ANALYZE, str(files["1M"]), str(second)],
                    "1M", max(3, args.runs // 2 + 1))
    pairs["parallel"] = par
    slower = 1 / par.wall_ratio
    # The machine's share of that ratio (two cores shared with other jobs, one memory bus):
    # two separate processes, one capture each, started at once.
    floor = ""
    try:
        f_ratio, f_wall = floor_ratio([*ANALYZE, str(files["1M"])],
                                      [[*ANALYZE, str(files["1M"])], [*ANALYZE, str(second)]],
                                      max(3, args.runs // 2 + 1))
        floor = f"; two separate one-file runs at once: {f_ratio:.2f}x ({f_wall:.2f} s)"
        print(f"  two separate 1-file runs at once: {f_ratio:.2f}x one alone "
              f"({f_wall:.2f} s)", flush=True)
    except ToolFailed as exc:
        floor = f"; two separate runs failed: {exc}"
    targets.append(Target(
        "2 files of 1M packets at once",
        f"{slower:.2f}x one file's wall ({par.ours.wall:.2f} s vs {par.ref.wall:.2f} s{floor})",
        "under 1.2x", slower < 1.2))
    loads.append(f"after the 2-file run: {load()}")
    rss_2m = pairs["tcpdump 2M"].ours.rss_mb if "tcpdump 2M" in pairs else float("nan")
    if big_rss is not None:
        flat = big_rss <= 1.2 * rss_2m
        targets.append(Target(
            "peak RSS at 2M and 20M packets",
            f"{rss_2m:.0f} MB at 2M, {big_rss:.0f} MB at 20M",
            "under 150 MB, flat (20M within 1.2x of 2M)",
            rss_2m < 150 and big_rss < 150 and flat))
    else:
        targets.append(Target("peak RSS at 2M packets", f"{rss_2m:.0f} MB", "under 150 MB",
                              rss_2m < 150))
    counts: list[tuple[str, int | None, int | None]] = []
    if not args.quick and have["tcpdump"] and shutil.which("valgrind"):
        print("counting instructions (valgrind cachegrind, user space only):", flush=True)
        for size in ("200k", "2M"):
            ref_i = instructions(["tcpdump", "-r", str(files[size]), "-w", "/dev/null"])
            ours_i = instructions([*ANALYZE, str(files[size])])
            counts.append((size, ref_i, ours_i))
            print(f"  {size}: tcpdump {ref_i or 0:,}  proxytrace {ours_i or 0:,}", flush=True)
    loads.append(f"end: {load()}")

    print()
    print(render(results, pairs, files))
    print()
    print(render_targets(targets))
    if counts:
        print()
        print(render_counts(counts))
    print()
    print("\n".join(loads))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS from {'GNU time' if GNU_TIME else 'wait4'}"
          + ("" if GNU_TIME else f": not below this process's own {own:.0f} MB (Linux starts a "
                                 "child's count at its parent's size; install Debian's time)"))
    ok_contacts, notes = contacts_agree(results, pairs)
    print("\n".join(notes))
    print("contacts check: " + ("every tool found the same contacts" if ok_contacts
                                else "MISMATCH"))
    met = all(t.met for t in targets)
    print(f"targets: {'all met' if met else 'not all met (see the met column)'}")
    print(f"bench took {time.monotonic() - started:.0f} s")
    failed = [r for r in _all_results(results, pairs) if r.failed]
    # Timing depends on the machine and its load: only a wrong result fails the run.
    return 0 if ok_contacts and not failed else 1


def _all_results(results: list[Result], pairs: dict[str, Pair]) -> list[Result]:
    out = list(results)
    for pair in pairs.values():
        out.extend((pair.ours, pair.ref))
    return out


def contacts_agree(results: list[Result], pairs: dict[str, Pair]) -> tuple[bool, list[str]]:
    """Every tool's contacts equal proxytrace's on the same capture."""
    ours = {r.size: r.contacts for r in _all_results(results, pairs)
            if r.tool == "proxytrace analyze" and r.contacts is not None}
    notes, ok = [], True
    for res in _all_results(results, pairs):
        if res.tool == "proxytrace analyze" or res.contacts is None:
            continue
        mine = ours.get(res.size)
        if mine is None:
            continue
        if res.contacts == mine:
            notes.append(f"{res.tool} ({res.size}): same contacts as proxytrace "
                         f"({sum(len(v) for v in mine.values())} names)")
        else:
            ok = False
            diff = {k: sorted(set(res.contacts.get(k, [])) ^ set(mine.get(k, [])))
                    for k in ("dns", "tls", "http")}
            notes.append(f"{res.tool} ({res.size}): DIFFERENT contacts: {diff}")
    return ok, notes


def _capture_label(size: str, files: dict[str, Path]) -> str:
    if size in files:
        return (f"{size} ({SIZES[size]:,} pkts, {files[size].stat().st_size / 1e6:,.0f} MB)")
    return size


def render(results: list[Result], pairs: dict[str, Pair], files: dict[str, Path]) -> str:
    head = ("| tool | capture | runs | wall s (median) | cpu s (median) | peak RSS MB | "
            "wall: tool ÷ proxytrace | cpu: tool ÷ proxytrace |")
    lines = [head, "|" + "---|" * 8]

    def row(res: Result, wall_ratio: str = "", cpu_ratio: str = "") -> None:
        if res.failed:
            lines.append(f"| {res.tool} | {res.size} | failed | | | | | |")
            return
        lines.append(f"| {res.tool} | {_capture_label(res.size, files)} | {res.runs} | "
                     f"{res.wall:.2f} | {res.cpu:.2f} | {res.rss_mb:.0f} | {wall_ratio} | "
                     f"{cpu_ratio} |")

    for pair in pairs.values():
        row(pair.ours)
        row(pair.ref, f"{pair.wall_ratio:.2f}", f"{pair.cpu_ratio:.2f}")
    ours_by_size = {r.size: r for r in _all_results(results, pairs)
                    if r.tool == "proxytrace analyze"}
    for res in results:
        mine = ours_by_size.get(res.size)
        if res.tool != "proxytrace analyze" and mine is not None and not res.failed:
            row(res, f"{res.wall / mine.wall:.2f}", f"{res.cpu / mine.cpu:.2f}")
        else:
            row(res)
    lines.append("")
    lines.append("Pairs alternate run by run; their ratios are the median of the per-round "
                 "ratios. 20M (cut): 10 time-shifted copies of a 2M-packet mix whose bulk "
                 f"packets are captured to {BULK_CAPLEN} bytes (made in a temporary folder).")
    return "\n".join(lines)


def render_targets(targets: list[Target]) -> str:
    lines = ["| reference on the same file | measured | target | met |", "|---|---|---|---|"]
    for t in targets:
        lines.append(f"| {t.name} | {t.measured} | {t.goal} | {'yes' if t.met else 'NO'} |")
    return "\n".join(lines)


def render_counts(counts: list[tuple[str, int | None, int | None]]) -> str:
    lines = ["| capture | tcpdump instructions | proxytrace instructions | proxytrace ÷ tcpdump |",
             "|---|---|---|---|"]
    for size, ref_i, ours_i in counts:
        ratio = f"{ours_i / ref_i:.2f}" if ref_i and ours_i else ""
        lines.append(f"| {size} | {ref_i or 0:,} | {ours_i or 0:,} | {ratio} |")
    lines.append("")
    lines.append("User-space instructions only (valgrind cachegrind): the kernel's copy of the "
                 "file into tcpdump's read() buffer and proxytrace's page mapping are not counted.")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
