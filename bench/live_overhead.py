"""Benchmark (not a test): what live attribution costs, and what the capture loses under load.

1. ``go mod download`` in the lab, alone and under ``proxytrace run --attribution TIER`` for each
   tier (fresh module cache every time); prints the median wall time and the ratio to bare go.
2. A bounded UDP burst on loopback captured by bare tcpdump (its defaults, and with
   --immediate-mode) and by proxytrace's capture backends; prints packets received and dropped.

Needs root (namespaces, capture, bpftrace). Run: ``sudo .venv/bin/python bench/live_overhead.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzer.live.backends import Capture, parse_tcpdump_stats  # noqa: E402

PROXYTRACE = [sys.executable, "-c", "from analyzer.cli import main; main()"]
GO_MOD = "module example.test/app\n\ngo 1.21\n\nrequire vanity.example/m v1.0.0\n"


def _go_runs(runs: int) -> None:
    from tests.lab.netlab import Lab

    with Lab() as lab:
        work = lab.tmp / "work"
        work.mkdir(exist_ok=True)
        (work / "go.mod").write_text(GO_MOD)
        env = lab.client_env({"PYTHONPATH": str(REPO)})
        modcache = Path(env["GOMODCACHE"])
        variants: dict[str, list[str]] = {"go alone": ["go", "mod", "download"]}
        for tier in ("ebpf", "strace", "procfs"):
            variants[f"run --attribution {tier}"] = [
                *PROXYTRACE, "run", "--attribution", tier, "-w", str(lab.tmp / "b.pcapng"),
                "-f", "jsonl", "-o", str(lab.tmp / "b.jsonl"), "--", "go", "mod", "download"]
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(runs):
            for name, argv in variants.items():  # interleaved, so drift hits every variant alike
                shutil.rmtree(modcache, ignore_errors=True)
                t0 = time.perf_counter()
                proc = lab.run_client(argv, env=env, timeout=300)
                elapsed = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"{name} failed: {proc.stderr[-500:]}")
                times[name].append(elapsed)
        base = statistics.median(times["go alone"])
        print(f"\n## go mod download in the lab ({runs} runs each, median wall time)")
        for name, values in times.items():
            med = statistics.median(values)
            print(f"{name:28s} {med:7.3f}s  x{med / base:5.2f}   (min {min(values):.3f}s, "
                  f"max {max(values):.3f}s)")


def _udp_burst(port: int, count: int, size: int, senders: int = 1) -> None:
    """``count`` datagrams in total from ``senders`` processes (bounded, loopback only)."""
    if senders > 1:
        import multiprocessing

        procs = [multiprocessing.Process(target=_send, args=(port, count // senders, size))
                 for _ in range(senders)]
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", port))
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        rx.close()
        return
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", port))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * size
    for i in range(count):
        tx.sendto(payload, ("127.0.0.1", port))
        if i % 256 == 0:  # keep the receive queue drained; the capture is what we measure
            try:
                while True:
                    rx.recv(65536)
            except BlockingIOError:
                pass
    rx.close()
    tx.close()


def _send(port: int, count: int, size: int) -> None:
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * size
    for _ in range(count):
        tx.sendto(payload, ("127.0.0.1", port))
    tx.close()


SENDERS = 1


def _bare_tcpdump(argv_extra: list[str], port: int, count: int, size: int, tmp: Path) -> tuple[int, int]:
    out = tmp / "bare.pcap"
    argv = ["tcpdump", "-i", "any", "-n", "-Z", "root", "-w", str(out), *argv_extra, f"udp port {port}"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, start_new_session=True)  # noqa: S603
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while "listening on" not in line:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit("tcpdump did not start")
    _udp_burst(port, count, size, SENDERS)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait()
    c = parse_tcpdump_stats(rest)
    return c.captured or 0, c.dropped or 0


def _ours(backend: str, port: int, count: int, size: int, tmp: Path) -> tuple[int, int]:
    cap = Capture(backend, "any", f"udp port {port}", tmp / f"ours.{backend}")
    cap.start()
    _udp_burst(port, count, size, SENDERS)
    time.sleep(0.5)
    c = cap.stop()
    return (c.captured or 0), (c.dropped or 0)


def _drops(count: int, size: int) -> None:
    print(f"\n## capture under load: {count} UDP datagrams of {size} bytes on loopback, "
          f"from {SENDERS} sender process(es) as fast as they can")
    rows: list[tuple[str, int, int]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows.append(("bare tcpdump (defaults)", *_bare_tcpdump([], 40001, count, size, tmp)))
        rows.append(("bare tcpdump --immediate-mode", *_bare_tcpdump(["--immediate-mode"], 40002, count, size, tmp)))
        rows.append(("proxytrace tcpdump backend", *_ours("tcpdump", 40003, count, size, tmp)))
        if shutil.which("dumpcap"):
            rows.append(("proxytrace dumpcap backend", *_ours("dumpcap", 40004, count, size, tmp)))
    base_captured = max(1, rows[0][1])
    for name, captured, dropped in rows:
        rate = dropped / max(1, captured + dropped)
        print(f"{name:32s} captured {captured:8d}  dropped {dropped:7d}  drop rate {rate:6.2%}  "
              f"captured vs bare tcpdump x{captured / base_captured:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--skip-go", action="store_true")
    args = ap.parse_args()
    global SENDERS
    SENDERS = max(1, args.senders)
    if os.geteuid() != 0:
        raise SystemExit("the benchmark needs root (network namespaces, capture, bpftrace)")
    if not args.skip_go:
        _go_runs(args.runs)
    _drops(min(args.packets, 1_000_000), args.size)


if __name__ == "__main__":
    main()
