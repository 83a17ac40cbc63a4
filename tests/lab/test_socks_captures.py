"""The recorded SOCKS captures against their direct twins: the same TLS and HTTP contacts as
without the tunnel, each with the proxy as ``via_proxy``; refusals are ``socks`` contacts."""

from __future__ import annotations

import json

import pytest

from analyzer.base.model import Contact
from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES

from .scenarios import LAB_WATCH


def _contacts(name: str) -> tuple[dict, list[Contact]]:
    path = CAPTURES / f"{name}.pcapng"
    if not path.exists():
        pytest.skip(f"{path} not recorded (make lab)")
    manifest = json.loads((CAPTURES / f"{name}.json").read_text())
    watch = WatchList.build([*DEFAULT_HOSTS, *LAB_WATCH])
    return manifest, analyze_files([path], AnalyzeOptions(watch=watch)).contacts


def test_go_through_socks5_matches_go_without_it() -> None:
    """socks-go's first run is the default scenario's go get with HTTPS_PROXY=socks5://: the
    same TLS contacts (hosts, SNI, ALPN, JA4), each through dante; no DNS of its own."""
    _, direct = _contacts("default")
    manifest, tunnelled = _contacts("socks-go")
    proxy = manifest["lab"]["server_ip"]

    def tls(contacts: list[Contact]) -> set[tuple]:
        return {(c.host, c.tls.sni, c.tls.alpn, c.tls.ja4) for c in contacts
                if c.layer == "tls" and c.tls is not None}

    assert tls(tunnelled) == tls(direct) and tls(direct)
    assert [c for c in tunnelled if c.layer != "tls"] == []
    assert {(c.via_proxy.address, c.via_proxy.port, c.via_proxy.kind) for c in tunnelled
            if c.via_proxy is not None} == {(proxy, 1080, "socks5")}
    assert all(c.via_proxy is not None for c in tunnelled)
    assert all(any("for the proxy to resolve" in n for n in c.notes) for c in tunnelled)
    # both runs (socks5:// and socks5h://) asked for both hosts: Go sends the name either way
    runs = {c.process.pid for c in tunnelled if c.process is not None}
    assert len(runs) == 2
    for pid in runs:
        assert {c.host for c in tunnelled if c.process and c.process.pid == pid} == {
            "proxy.golang.org", "sum.golang.org"}


def test_curl_through_each_socks_flavour() -> None:
    manifest, contacts = _contacts("socks-curl")
    dante, ssh = (int(p.split(":")[1]) for p in (manifest["socks_clients"][0]["proxy"],
                                                  manifest["socks_clients"][-1]["proxy"]))
    seen = {(c.layer, c.host, c.via_proxy.kind if c.via_proxy else None,
             c.via_proxy.port if c.via_proxy else None) for c in contacts}
    assert seen == {
        ("dns", "proxy.golang.org", None, None), ("dns", "sum.golang.org", None, None),
        ("tls", "proxy.golang.org", "socks4", dante),     # --socks4: curl resolved the name
        ("tls", "sum.golang.org", "socks5", dante),       # --socks5: the same
        ("tls", "go.dev", "socks5", dante),               # --socks5-hostname: the proxy did
        ("http", "goproxy.example", "socks5", dante),     # plain HTTP in the tunnel
        ("socks", "golang.org", "socks4", dante),         # --socks4a: dante refuses it
        ("socks", "vanity.example", "socks5", dante),     # a port nothing listens on
        ("tls", "golang.org", "socks4", ssh),             # --socks4a through ssh -D
    }
    named = {c.host for c in contacts if any("for the proxy to resolve" in n for n in c.notes)}
    assert named == {"go.dev", "goproxy.example", "golang.org", "vanity.example"}
    refusals = {c.host: c.notes[0] for c in contacts if c.layer == "socks"}
    assert refusals == {
        "golang.org": "socks4a CONNECT golang.org:443; reply: request rejected or failed",
        "vanity.example": "socks5h CONNECT vanity.example:8443; reply: connection refused"}
    [http] = [c for c in contacts if c.layer == "http"]
    assert http.http is not None and (http.http.path, http.http.status) == (
        "/vanity.example/m/@v/list", 200)
    assert http.operation == "module-list"
    assert {c.process.comm for c in contacts if c.process} == {"curl"}


@pytest.mark.parametrize("name", ["socks-go", "socks-curl"])
def test_tunnelled_contacts_are_on_the_client_ports_dante_logged(name: str) -> None:
    """dante logs both ends of each tunnel, so the manifest knows which SOCKS client connection
    carried each TLS handshake and request the lab server saw: the analyzer puts them there."""
    manifest, contacts = _contacts(name)
    want = sorted((e["layer"], e["host"], e["client_port"]) for e in manifest["expected"]
                  if e.get("via_proxy") and e["client_port"] is not None)
    assert want
    ports = {p for _, _, p in want}
    got = sorted((c.layer, c.host, c.sport) for c in contacts if c.sport in ports)
    assert got == want
