"""The live lab: it comes up, runs real clients, goes down and leaves nothing behind.

These need root and network namespaces; the fixtures skip with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS

from .netlab import IP, NETNS_ETC, REPO, Lab, _run, lab_unavailable_reason
from .record import record
from .test_offline import _clienthello_segments

pytestmark = pytest.mark.lab
GOOGLE_HOSTS = set(DEFAULT_HOSTS) - {"goproxy.cn", "goproxy.io"}


def _require_lab() -> None:
    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)


def _namespaces() -> set[str]:
    out = _run([IP, "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_lab_comes_up_and_answers(lab: Lab) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    assert {lab.client_ns, lab.server_ns} <= _namespaces()
    assert (NETNS_ETC / lab.client_ns / "resolv.conf").read_text() == f"nameserver {lab.server_ip}\n"
    mtu = _run(lab.client_cmd(["cat", f"/sys/class/net/{lab.client_if}/mtu"])).stdout.strip()
    assert mtu == "1500"
    res = lab.run_client(["curl", "-sS", "https://proxy.golang.org/vanity.example/m/@v/list"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["v1.0.0", "v1.1.0"]
    assert [(r["host"], r["path"], r["tls"]) for r in lab.server_requests()] == [
        ("proxy.golang.org", "/vanity.example/m/@v/list", True)]
    assert lab.server_requests()[0]["user_agent"].startswith("curl/")
    assert {(q["name"], q["qtype"]) for q in lab.dns_queries()} >= {("proxy.golang.org", "A")}
    # Nothing routes out of the lab.
    routes = _run(lab.client_cmd(["ip", "-4", "route"])).stdout
    assert "default" not in routes


def test_teardown_leaves_nothing_even_when_the_body_raises() -> None:
    _require_lab()
    lab = Lab()
    with pytest.raises(RuntimeError, match="scenario failed"), lab:
        lab.start_forward_proxy()
        server_pids = [p.pid for p in lab._procs.values()]
        raise RuntimeError("scenario failed")
    assert lab.leftovers() == []
    assert not {lab.client_ns, lab.server_ns} & _namespaces()
    for pid in server_pids:
        assert not Path(f"/proc/{pid}").exists()


def test_fixture_finalizer_cleans_up_after_a_failing_test(tmp_path: Path) -> None:
    """A test using the ``lab`` fixture fails; its lab is gone afterwards."""
    _require_lab()
    names = tmp_path / "names.json"
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(f"""
        import json
        from tests.lab.fixtures import lab  # noqa: F401

        def test_fails(lab):
            json.dump({{"ns": [lab.client_ns, lab.server_ns], "tmp": str(lab.tmp),
                       "ifs": [lab.client_if, lab.server_if]}}, open({str(names)!r}, "w"))
            assert False, "deliberate"
    """))
    res = subprocess.run([sys.executable, "-m", "pytest",  # noqa: S603 "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), str(test_file)],
                         capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    left = json.loads(names.read_text())
    assert not set(left["ns"]) & _namespaces()
    assert not any((NETNS_ETC / ns).exists() for ns in left["ns"])
    assert not Path(left["tmp"]).exists()
    links = _run([IP, "-o", "link"]).stdout
    assert not any(i in links for i in left["ifs"])


def test_next_lab_removes_what_a_killed_lab_left() -> None:
    """SIGKILL leaves no chance to clean up; the next lab that starts removes the remains."""
    _require_lab()
    script = textwrap.dedent("""
        import json, os, signal
        from tests.lab.netlab import Lab
        lab = Lab()
        lab.start()
        print(json.dumps({"ns": [lab.client_ns, lab.server_ns], "tmp": str(lab.tmp),
                          "claim": str(lab._claim), "pids": [p.pid for p in lab._procs.values()]}),
              flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,  # noqa: S603
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    info = json.loads(res.stdout.splitlines()[0])
    assert set(info["ns"]) <= _namespaces()  # really left behind
    with Lab() as lab:
        assert lab.client_ns
    assert not set(info["ns"]) & _namespaces()
    assert not Path(info["tmp"]).exists()
    assert not Path(info["claim"]).exists()
    assert not any((NETNS_ETC / ns).exists() for ns in info["ns"])
    for pid in info["pids"]:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_sigterm_tears_the_lab_down(tmp_path: Path) -> None:
    _require_lab()
    script = textwrap.dedent("""
        import json, sys, time
        from tests.lab.netlab import Lab
        lab = Lab()
        lab.start()
        print(json.dumps({"ns": [lab.client_ns, lab.server_ns], "tmp": str(lab.tmp)}), flush=True)
        time.sleep(120)
    """)
    argv = [sys.executable, "-c", script]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True,  # noqa: S603
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert set(info["ns"]) <= _namespaces()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert not set(info["ns"]) & _namespaces()
    assert not Path(info["tmp"]).exists()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Scenarios 1-3 recorded live (about two seconds each)."""
    _require_lab()
    out = tmp_path_factory.mktemp("lab-captures")
    return {name: record(name, out, annotate=False) | {"_dir": str(out)}
            for name in ("default", "direct-sumdb", "direct-nosumdb")}


def _hosts(manifest: dict, layer: str | None = None) -> set[str]:
    return {e["host"] for e in manifest["expected"] if layer is None or e["layer"] == layer}


def test_scenario1_default_contacts_proxy_and_sumdb(recorded: dict[str, dict]) -> None:
    m = recorded["default"]
    assert [s["returncode"] for s in m["steps"]] == [0]  # the lab sumdb verified
    assert {"proxy.golang.org", "sum.golang.org"} <= _hosts(m, "dns")
    assert {"proxy.golang.org", "sum.golang.org"} <= _hosts(m, "tls")
    assert {e["process"] for e in m["expected"]} == {"go"}
    assert m["go_x_not_in_server_log"] == []
    supported = [r for r in m["server_log"] if r.get("path") == "/sumdb/sum.golang.org/supported"]
    assert supported and all(r["status"] == 404 for r in supported)


def test_scenario1_clienthello_spans_two_segments(recorded: dict[str, dict]) -> None:
    spans = _clienthello_segments(Path(recorded["default"]["_dir"]) / "default.pcapng")
    assert spans and all(n == 2 for n in spans.values()), spans


def test_scenario2_direct_still_contacts_sumdb(recorded: dict[str, dict]) -> None:
    m = recorded["direct-sumdb"]
    assert "sum.golang.org" in _hosts(m, "tls")
    assert "proxy.golang.org" not in _hosts(m)
    assert "vanity.example" in _hosts(m, "tls")


def test_scenario3_direct_nosumdb_contacts_no_google_host(recorded: dict[str, dict]) -> None:
    m = recorded["direct-nosumdb"]
    assert not _hosts(m) & GOOGLE_HOSTS
    assert _hosts(m) == {"vanity.example"}


def test_recording_keeps_the_servers_keys_for_the_go_command(recorded: dict[str, dict]) -> None:
    """The go command writes no key log; the lab server's own one holds every handshake's keys."""
    m = recorded["default"]
    keylog = Path(recorded["default"]["_dir"]) / "default.keylog"
    assert m["keylog"] == "default.keylog"
    randoms = {e["client_random"] for e in m["server_log"] if e.get("event") == "tls"}
    labels: dict[str, set[str]] = {}
    for line in keylog.read_text().splitlines():
        label, random, _secret = line.split()
        labels.setdefault(random, set()).add(label)
    assert randoms and randoms <= set(labels)
    # TLS 1.3: both directions' handshake and application traffic secrets.
    assert all({"CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET"} <= labels[r]
               for r in randoms)
