"""``make bench``: proxytrace analyze against the tools a user would pick instead, side by side.

1. Generates the captures (bench.gen, deterministic; cached under bench/data/, git-ignored).
2. Runs every tool as a child process several times; reports the median wall time, the median
   CPU time (user + system: less sensitive than wall time to other load on the machine), and
   the child's peak RSS (from wait4's rusage, per run).
3. Prints the table with the ratio to ``proxytrace analyze`` on the same file and the issue's
   target, and checks every tool found the same contacts (DNS names, TLS SNIs, HTTP hosts).
   The exit status is 1 only when a tool failed or found different contacts: timings depend on
   the machine and its load, so unmet targets are reported, not fatal.

``python -m bench.run [--runs N] [--quick]``; --quick skips the slow reference tools (tshark,
pyshark, scapy, the dpkt loop) for a fast check of proxytrace itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import gen
from .loops import TSHARK_FILTER

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
GEN_VERSION = 3  # bump when the generator's output changes: cached files are then rebuilt
SIZES = {"20k": 20_000, "200k": 200_000, "1M": 1_000_000, "2M": 2_000_000}
PY = sys.executable
_SCRIPT = Path(PY).parent / "proxytrace"  # the installed entry point, as users run it
PROXYTRACE = ([str(_SCRIPT)] if _SCRIPT.exists()
              else [PY, "-c", "from analyzer.cli import main; main()"]) + ["analyze"]


@dataclass
class Result:
    tool: str
    size: str
    runs: int
    wall: float
    cpu: float
    rss_mb: float
    contacts: dict[str, list[str]] | None = None
    walls: list[float] = field(default_factory=list)


def capture(size: str) -> Path:
    path = DATA / f"mix-v{GEN_VERSION}-{size}.pcap"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        t0 = time.monotonic()
        n = gen.write_pcap(tmp, SIZES[size])
        tmp.rename(path)
        print(f"generated {path.relative_to(REPO)}: {n:,} packets, "
              f"{path.stat().st_size / 1e6:,.0f} MB in {time.monotonic() - t0:.1f} s", flush=True)
    return path


class ToolFailed(Exception):
    pass


def run_child(cmd: list[str]) -> tuple[float, float, float, bytes]:
    """(wall s, cpu s, peak RSS MB, stdout) of one run of ``cmd``."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,  # noqa: S603 - fixed argument lists
                            stderr=subprocess.DEVNULL, cwd=REPO)
    out = proc.stdout.read() if proc.stdout is not None else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 3):
        raise ToolFailed(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def measure(tool: str, size: str, cmd: list[str], runs: int,
            parse: object = None) -> Result:
    walls, cpus, rss = [], [], []
    out = b""
    for _ in range(runs):
        try:
            wall, cpu, peak, out = run_child(cmd)
        except ToolFailed as exc:
            print(f"  {tool:<22} {size:>5}: FAILED: {exc}", flush=True)
            return Result(tool, size, 0, float("nan"), float("nan"), float("nan"))
        walls.append(wall)
        cpus.append(cpu)
        rss.append(peak)
    contacts = parse(out) if callable(parse) else None
    res = Result(tool, size, runs, statistics.median(walls), statistics.median(cpus), max(rss),
                 contacts, walls)
    print(f"  {tool:<22} {size:>5}: wall {res.wall:7.2f} s  cpu {res.cpu:7.2f} s  "
          f"rss {res.rss_mb:6.0f} MB  ({runs} run{'s' if runs > 1 else ''})", flush=True)
    return res


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run")
    ap.add_argument("--runs", type=int, default=5, help="runs of the fast tools (median)")
    ap.add_argument("--slow-runs", type=int, default=3, help="runs of tshark and the dpkt loop")
    ap.add_argument("--quick", action="store_true", help="proxytrace and tcpdump only")
    args = ap.parse_args(argv)
    files = {size: capture(size) for size in SIZES}
    have = {tool: shutil.which(tool) is not None for tool in ("tcpdump", "tshark")}
    results: dict[tuple[str, str], Result] = {}

    def ours(size: str) -> Result:
        key = ("proxytrace analyze", size)
        if key not in results:
            results[key] = measure(*key, [*PROXYTRACE, "-q", "--all", "-f", "jsonl",
                                          str(files[size])], args.runs, proxytrace_contacts)
        return results[key]

    print("measuring (median of runs; cpu = user + system of the child):", flush=True)
    for size in ("20k", "200k", "1M", "2M"):
        ours(size)
    if have["tcpdump"]:
        for size in ("1M", "2M"):
            results[("tcpdump -r -w /dev/null", size)] = measure(
                "tcpdump -r -w /dev/null", size,
                ["tcpdump", "-r", str(files[size]), "-w", "/dev/null"], args.runs)
    if not args.quick:
        if have["tshark"]:
            results[("tshark -Y", "200k")] = measure(
                "tshark -Y", "200k",
                ["tshark", "-n", "-r", str(files["200k"]), "-Y", TSHARK_FILTER, "-T", "fields",
                 "-E", "separator=|", "-e", "dns.qry.name",
                 "-e", "tls.handshake.extensions_server_name", "-e", "http.host"],
                args.slow_runs, tshark_contacts)
        results[("dpkt loop", "1M")] = measure(
            "dpkt loop", "1M", [PY, "-m", "bench.loops", "dpkt", str(files["1M"])],
            args.slow_runs, loop_contacts)
        if have["tshark"]:
            results[("pyshark", "20k")] = measure(
                "pyshark", "20k", [PY, "-m", "bench.loops", "pyshark", str(files["20k"])], 1,
                loop_contacts)
        results[("scapy loop", "20k")] = measure(
            "scapy loop", "20k", [PY, "-m", "bench.loops", "scapy", str(files["20k"])], 1,
            loop_contacts)
    print()
    print(render(results, files))
    met = targets_met(results)
    print(f"targets: {'all met' if met else 'not all met (see the met column)'}")
    # Timing depends on the machine and its load: only a wrong result fails the run.
    ok = all(res.runs > 0 for res in results.values()) and contacts_agree(results)[0]
    return 0 if ok else 1


TARGETS = {  # tool -> (ratio description, predicate on (tool wall, proxytrace wall))
    "tcpdump -r -w /dev/null": ("proxytrace within 3x", lambda ref, us: us <= 3 * ref),
    "tshark -Y": ("proxytrace >= 50x faster", lambda ref, us: ref >= 50 * us),
    "dpkt loop": ("proxytrace >= 10x faster", lambda ref, us: ref >= 10 * us),
}


def _rows(results: dict[tuple[str, str], Result]) -> list[tuple[Result, Result | None]]:
    rows = []
    for (tool, size), res in results.items():
        ours = results.get(("proxytrace analyze", size))
        rows.append((res, ours if tool != "proxytrace analyze" else None))
    return rows


def targets_met(results: dict[tuple[str, str], Result]) -> bool:
    ok = True
    for res, ours in _rows(results):
        target = TARGETS.get(res.tool)
        if ours is not None and target is not None and not target[1](res.wall, ours.wall):
            ok = False
    big = results.get(("proxytrace analyze", "2M"))
    if big is not None and big.rss_mb >= 150:
        ok = False
    return ok


def contacts_agree(results: dict[tuple[str, str], Result]) -> tuple[bool, list[str]]:
    notes, ok = [], True
    for res, ours in _rows(results):
        if ours is None or res.contacts is None or ours.contacts is None:
            continue
        if res.contacts == ours.contacts:
            notes.append(f"{res.tool} ({res.size}): same contacts as proxytrace "
                         f"({sum(len(v) for v in ours.contacts.values())} names)")
        else:
            ok = False
            diff = {k: sorted(set(res.contacts.get(k, [])) ^ set(ours.contacts.get(k, [])))
                    for k in ("dns", "tls", "http")}
            notes.append(f"{res.tool} ({res.size}): DIFFERENT contacts: {diff}")
    return ok, notes


def render(results: dict[tuple[str, str], Result], files: dict[str, Path]) -> str:
    head = ("| tool | capture | runs | wall s (median) | cpu s (median) | peak RSS MB | "
            "proxytrace wall s | wall: tool ÷ proxytrace | cpu: tool ÷ proxytrace | target | "
            "met (wall) |")
    lines = [head, "|" + "---|" * 11]
    for res, ours in _rows(results):
        if res.runs == 0:
            lines.append(f"| {res.tool} | {res.size} | failed | | | | | | | | |")
            continue
        ratio = cpu_ratio = target = met = ""
        if ours is not None:
            ratio = f"{res.wall / ours.wall:.2f}"
            cpu_ratio = f"{res.cpu / ours.cpu:.2f}"
            spec = TARGETS.get(res.tool)
            if spec is not None:
                target = spec[0]
                met = "yes" if spec[1](res.wall, ours.wall) else "NO"
        elif res.size == "2M":
            target, met = "RSS < 150 MB", "yes" if res.rss_mb < 150 else "NO"
        lines.append(f"| {res.tool} | {res.size} ({SIZES[res.size]:,} pkts, "
                     f"{files[res.size].stat().st_size / 1e6:,.0f} MB) | {res.runs} | "
                     f"{res.wall:.2f} | {res.cpu:.2f} | {res.rss_mb:.0f} | "
                     f"{ours.wall if ours else res.wall:.2f} | {ratio} | {cpu_ratio} | {target} | "
                     f"{met} |")
    ok, notes = contacts_agree(results)
    lines.append("")
    lines.extend(notes)
    lines.append("contacts check: " + ("every tool found the same contacts" if ok else "MISMATCH"))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
