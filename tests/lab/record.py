"""Re-record the lab's scenarios into captures/: ``python -m tests.lab.record [SCENARIO...]`` (root).

For each scenario: a fresh Lab, dumpcap on the client veth while the scenario runs, then
``captures/<scenario>.pcapng`` and ``captures/<scenario>.json`` (the manifest, with the expected
contacts derived from the logs), plus ``captures/<scenario>.keylog``: the TLS secrets of every
connection the lab server terminated (the go command's included) and of any client that wrote a key
log (curl, node), so every recorded TLS connection can be decrypted.
Also writes ``captures/lab-expect.toml``, the expectations file for the lab's hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList

from . import editor, labca
from .derive import derive_expected, go_x_mismatches, socket_owners
from .logs import parse_dante_log, parse_go_x, parse_ssh_socks_log, parse_tinyproxy_log
from .netlab import LAB_HOSTS, LAB_NET, REPO, Lab, lab_unavailable_reason
from .scenarios import SCENARIOS, Run, Scenario

CAPTURES = REPO / "captures"


def expect_toml() -> str:
    """Expectations for the lab: its addresses and its CA for every watched lab host."""
    hosts = [h for h in LAB_HOSTS if h in DEFAULT_HOSTS or h in ("goproxy.example", "vanity.example")]
    lines = ["# Expectations for captures recorded in the lab (tests/lab): every lab address is in",
             f"# {LAB_NET} and every certificate comes from the lab CA. Scenarios that break these",
             "# (dns-rewrite, interception) are meant to produce findings.", ""]
    for host in hosts:
        lines += [f'[hosts."{host}"]', f'addresses = ["{LAB_NET}"]',
                  f'issuers = ["{labca.LAB_CA_NAME}"]', ""]
    return "\n".join(lines)


def merge_keylogs(*texts: str) -> str:
    """One NSS key log from several: every ``LABEL CLIENT_RANDOM SECRET`` line once, in order of
    first appearance; comments (Python's header line) and blank lines dropped. A client's and the
    server's log hold the same secrets for a connection, so the union stays small."""
    seen: dict[str, None] = {}
    for text in texts:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and not line.startswith("#"):
                seen.setdefault(" ".join(parts), None)
    return "".join(f"{line}\n" for line in seen)


def _since(events: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    return [e for e in events if e["ts"] >= since]


def manifest_for(scenario: Scenario, lab: Lab, run: Run, since: float = 0.0) -> dict[str, Any]:
    """``since``: when the capture started; what the scenario's preparation caused before is
    left out (dnsmasq logs whole seconds: the preparation ends in an earlier second)."""
    watch = WatchList.build([*DEFAULT_HOSTS, *scenario.watch])
    events = _since(lab.server_events(), since)
    dns_log = _since(lab.dns_queries(), math.floor(since))
    proxy_requests = parse_tinyproxy_log(lab.proxy_log())
    socks_requests = parse_dante_log(lab.socks_log()) + parse_ssh_socks_log(lab.ssh_socks_log())
    trace = editor.load_traces(run.traces) if run.traces else None
    strace = ({"processes": editor.process_table(trace),
               "connections": [c.to_dict() for c in trace.connections]} if trace else None)
    owners = (socket_owners(strace["processes"], strace["connections"], lab.server_ip)
              if strace else None)
    expected = derive_expected(
        client_ip=lab.client_ip, proxy_ip=lab.server_ip if run.proxy_url else None, watch=watch,
        server_events=events, dns_queries=dns_log, proxy_requests=proxy_requests,
        findings=scenario.findings, socks_requests=socks_requests,
        socks_clients=run.socks_clients, owners=owners)
    go_x = [item for step in run.steps if step.process == "go" for item in parse_go_x(step.stderr)]
    env: dict[str, str] = {}
    for step in run.steps:
        env.update(step.env)
    return {
        "scenario": scenario.name,
        "number": scenario.number,
        "description": scenario.description,
        "command": "\n".join(s.to_dict()["command"] for s in run.steps),
        "env": env,
        "watch": list(scenario.watch),
        "expected": [{k: v for k, v in e.items() if k != "ts"} | {"ts": e["ts"]} for e in expected],
        "steps": [s.to_dict() for s in run.steps],
        "lab": {"client_ip": lab.client_ip, "server_ip": lab.server_ip, "other_ip": lab.other_ip,
                "client_if": lab.client_if, "proxy": run.proxy_url, "ca": labca.LAB_CA_NAME,
                "intercept_ca": labca.INTERCEPT_CA_NAME, "sumdb_key": lab.sumdb_key,
                "lab_env": {k: v for k, v in lab.client_env().items()
                            if k in ("GOSUMDB", "GOFLAGS")}},
        "go_x": go_x,
        "go_x_not_in_server_log": go_x_mismatches(go_x, events),
        "server_log": events,
        "dns_log": dns_log,
        "proxy_log": proxy_requests,
        "socks_log": socks_requests,
        "socks_clients": run.socks_clients,
    } | ({"strace": strace, "editor": editor.summarize(run.editor),
          "goroot_go_env": editor.goroot_go_env(strace["processes"])} if strace else {})


class _Annotator:
    """Process comments for the recorded capture, from proxytrace's own eBPF tracer (the live
    attribution tier), so the bundled captures carry each packet's process like `proxytrace run`
    writes them. Optional: without bpftrace/BTF the capture is kept as dumpcap wrote it."""

    def __init__(self, enabled: bool) -> None:
        self.tracer: Any = None
        self.problem: str | None = None if enabled else "disabled (--no-annotate)"
        if not enabled:
            return
        try:
            from analyzer.attribution.ebpf import EbpfTracer
        except ImportError as exc:
            self.problem = f"no eBPF tracer: {exc}"
            return
        tracer = EbpfTracer()
        try:
            tracer.start()
        except (RuntimeError, OSError) as exc:
            self.problem = f"no eBPF tracer: {exc}"
            with contextlib.suppress(Exception):
                tracer.stop()  # bpftrace may still be running after a start timeout
            return
        self.tracer = tracer

    def finish(self, raw: Path, out: Path, interface: str) -> dict[str, Any]:
        attributor = self.tracer.stop() if self.tracer is not None else None
        if not raw.exists():
            return {}
        if attributor is None:
            shutil.move(raw, out)
            return {"tier": None, "problem": self.problem}
        from analyzer.live.annotate import annotate_capture

        result = annotate_capture(raw, out, attributor, None, interface)
        out.chmod(0o644)  # a project file, not a private capture
        raw.unlink()
        return {"tier": "ebpf", "packets": result.packets, "attributed": result.attributed}


def record(name: str, out_dir: Path, annotate: bool = True) -> dict[str, Any]:
    scenario = SCENARIOS[name]
    with Lab() as lab:
        run = Run()
        pcap = out_dir / f"{name}.pcapng"
        raw = lab.tmp / "raw.pcapng"
        since = 0.0
        if scenario.prepare is not None:
            scenario.prepare(lab)
            time.sleep(math.floor(time.time()) + 1.05 - time.time())
            since = time.time()
        annotator = _Annotator(annotate)
        try:
            with lab.capture(raw):
                scenario.run(lab, run)
        finally:
            annotation = annotator.finish(raw, pcap, lab.client_if)
        manifest = manifest_for(scenario, lab, run, since)
        for name_, data in run.editor.items():
            # gopls's own -rpc.trace log: ground truth kept next to the capture.
            log_out = out_dir / f"{name}.{name_}.log"
            log_out.write_text(data["gopls_log"])
            log_out.chmod(0o644)
        manifest["annotation"] = annotation
        keylog_out = out_dir / f"{name}.keylog"
        sources = [p for p in (lab.server_keylog, run.keylog) if p is not None and p.exists()]
        keys = merge_keylogs(*(p.read_text() for p in sources))
        if keys:
            # Lab keys, not secrets: the file is committed next to its capture.
            keylog_out.write_text(keys)
            keylog_out.chmod(0o644)
            manifest["keylog"] = keylog_out.name
        elif keylog_out.exists():
            keylog_out.unlink()
    (out_dir / f"{name}.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.record", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                        help=f"default: all ({', '.join(SCENARIOS)})")
    parser.add_argument("--out", type=Path, default=CAPTURES, help="output directory")
    parser.add_argument("--no-annotate", action="store_true",
                        help="keep dumpcap's capture without process comments")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    reason = lab_unavailable_reason()
    if reason:
        print(f"cannot record: {reason}", file=sys.stderr)
        return 2
    names = args.scenarios or list(SCENARIOS)
    lacking = {n: SCENARIOS[n].missing_tools() for n in names if SCENARIOS[n].missing_tools()}
    if lacking:
        for n, tools in lacking.items():
            print(f"cannot record {n}: missing {'; '.join(tools)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lab-expect.toml").write_text(expect_toml())
    failed = 0
    for name in names:
        manifest = record(name, args.out, annotate=not args.no_annotate)
        layers: dict[str, int] = {}
        for e in manifest["expected"]:
            layers[e["layer"]] = layers.get(e["layer"], 0) + 1
        codes = [s["returncode"] for s in manifest["steps"]]
        size = (args.out / f"{name}.pcapng").stat().st_size
        note = manifest["annotation"]
        how = (f"{note['attributed']}/{note['packets']} packets with their process"
               if note.get("tier") else f"no process comments ({note.get('problem')})")
        print(f"{name}: {len(manifest['expected'])} expected contacts {layers}, exit codes {codes}, "
              f"{size} bytes, {how}")
        for session, summary in manifest.get("editor", {}).items():
            if not summary["ok"]:
                print(f"  the LSP session {session} failed: {summary['error']}")
                failed += 1
        if manifest["go_x_not_in_server_log"]:
            print(f"  go -x fetches missing from the server log: {manifest['go_x_not_in_server_log']}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
