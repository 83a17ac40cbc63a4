"""Live: the real go command and curl, directly and through real SOCKS servers (dante, ssh -D),
give the same TLS and HTTP contacts, plus ``via_proxy``. Needs root and network namespaces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analyzer.base.model import Contact
from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files

from .netlab import Lab
from .scenarios import APP_GOMOD, LAB_MODULE, LAB_WATCH, _workdir

MISSING = [t for t in ("danted", "sshd", "ssh", "curl") if shutil.which(t) is None]
pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(bool(MISSING), reason=f"not installed: {MISSING} (make sysdeps)")]
WATCH = WatchList.build([*DEFAULT_HOSTS, *LAB_WATCH])


def _analyze(path: Path) -> list[Contact]:
    return analyze_files([path], AnalyzeOptions(watch=WATCH)).contacts


def _tls(contacts: list[Contact]) -> list[tuple]:
    return [(c.host, c.tls.sni, c.tls.alpn, c.tls.ja4) for c in contacts
            if c.layer == "tls" and c.tls is not None]


def test_curl_direct_and_through_each_socks_flavour(lab: Lab, tmp_path: Path) -> None:
    dante, ssh = lab.start_socks_proxy(), lab.start_ssh_socks_proxy()
    url = "https://proxy.golang.org/vanity.example/m/@v/list"
    plain = "http://goproxy.example/vanity.example/m/@v/list"
    runs = [([], url), (["--socks4", dante], url), (["--socks5", dante], url),
            (["--socks5-hostname", dante], url), (["--socks4a", ssh], url),
            ([], plain), (["--socks5-hostname", dante], plain), (["--socks4a", ssh], plain)]
    with lab.capture(tmp_path / "curl.pcapng") as path:
        for flags, target in runs:
            res = lab.run_client(["curl", "-sS", "-o", "/dev/null", *flags, target])
            assert res.returncode == 0, (flags, res.stderr)
    contacts = _analyze(path)
    tls = [c for c in contacts if c.layer == "tls"]
    http = [c for c in contacts if c.layer == "http"]
    assert len(tls) == 5 and len(http) == 3
    assert len(set(_tls(tls))) == 1  # the same ClientHello whichever way it went
    kinds = [(c.via_proxy.kind, c.via_proxy.port) if c.via_proxy else None for c in tls + http]
    d, s = (int(p.rsplit(":", 1)[1]) for p in (dante, ssh))
    assert kinds == [None, ("socks4", d), ("socks5", d), ("socks5", d), ("socks4", s),
                     None, ("socks5", d), ("socks4", s)]
    assert len({(c.host, c.http.method, c.http.path, c.http.status) for c in http if c.http}) == 1
    # curl resolved the name itself only without a proxy and for --socks4/--socks5
    assert len([c for c in contacts if c.layer == "dns" and c.dns and c.dns.qtype == "A"
                and c.host == "proxy.golang.org"]) == 3
    # what the proxies saw: dante one request per run through it, ssh -D the names
    assert sum(1 for line in lab.socks_log() if "tcp/connect [:" in line) == 4
    assert sum(1 for line in lab.ssh_socks_log() if "free: direct-tcpip" in line) == 2


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_go_direct_and_through_dante(lab: Lab, tmp_path: Path, scheme: str) -> None:
    proxy = lab.start_socks_proxy()

    def go_get(name: str, extra: dict[str, str]) -> list[Contact]:
        work = _workdir(lab, APP_GOMOD)
        (work / "go.sum").unlink(missing_ok=True)
        gopath = lab.tmp / f"gopath-{name}"
        env = lab.client_env({"GOPATH": str(gopath), "GOMODCACHE": str(gopath / "pkg/mod"),
                              **extra})
        with lab.capture(tmp_path / f"{name}.pcapng") as path:
            res = lab.run_client(["go", "get", f"{LAB_MODULE}@latest"], env=env, cwd=work,
                                 timeout=90)
        assert res.returncode == 0, res.stderr
        return _analyze(path)

    direct = go_get("direct", {})
    tunnelled = go_get("tunnel", {"HTTPS_PROXY": f"{scheme}://{proxy}"})
    # as sets: the go command opens one or two connections to proxy.golang.org, as it races
    assert set(_tls(tunnelled)) == set(_tls(direct)) and _tls(direct)
    assert {c.host for c in tunnelled} == {"proxy.golang.org", "sum.golang.org"}
    assert {c.layer for c in direct} == {"dns", "tls"}
    assert {c.layer for c in tunnelled} == {"tls"}  # Go sends the name: no DNS of its own
    assert {(c.via_proxy.kind, c.via_proxy.port) for c in tunnelled if c.via_proxy} == {
        ("socks5", lab.socks_port)}
    assert all(c.via_proxy is not None for c in tunnelled)
