"""Offline checks of the lab's pieces and of the recorded captures (no root needed)."""

from __future__ import annotations

import base64
import hashlib
import json
import tomllib
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList

from .derive import derive_expected, operation_for, process_from_user_agent, socket_owners
from .labca import INTERCEPT_CA_NAME, LAB_CA_NAME, issue, make_ca
from .logs import parse_dnsmasq_log, parse_go_x, parse_tinyproxy_log
from .modules import lab_modules
from .record import expect_toml, merge_keylogs
from .scenarios import SCENARIOS
from .server import client_random
from .sumdb import ChecksumDB, Signer, merkle_root, node_hash, parse_tile_path, record_hash

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
GOOGLE_HOSTS = set(DEFAULT_HOSTS) - {"goproxy.cn", "goproxy.io"}


def manifests() -> list[dict]:
    return [json.loads((CAPTURES / f"{name}.json").read_text()) for name in SCENARIOS
            if (CAPTURES / f"{name}.json").exists()]


# -- checksum database -----------------------------------------------------------------------------
def test_merkle_root_follows_rfc6962() -> None:
    leaves = [record_hash(bytes([i])) for i in range(3)]
    # RFC 6962 2.1: for n=3 the split is k=2.
    assert merkle_root(leaves) == node_hash(node_hash(leaves[0], leaves[1]), leaves[2])
    assert merkle_root([]) == hashlib.sha256(b"").digest()


def test_tile_paths() -> None:
    assert parse_tile_path("tile/8/0/000.p/5") == (8, 0, 0, 5)
    assert parse_tile_path("tile/8/data/x001/234") == (8, -1, 1234, 256)
    assert parse_tile_path("tile/8/1/000") == (8, 1, 0, 256)
    assert parse_tile_path("tile/4/0/000") is None  # the go command uses height 8 only
    assert parse_tile_path("tile/8/0/000.p/0") is None


def test_signed_tree_and_lookup_shape() -> None:
    signer = Signer("sum.golang.org", bytes(32))
    name, keyhash, key = signer.verifier_key.split("+")
    assert name == "sum.golang.org" and len(keyhash) == 8
    assert base64.b64decode(key)[0] == 1  # algorithm byte: Ed25519
    mods = lab_modules()
    db = ChecksumDB(signer, [(m.path, m.version, m.sumdb_record()) for m in mods])
    body = db.lookup(mods[0].path, mods[0].version)
    assert body is not None
    rid, text = body.split(b"\n", 1)
    assert int(rid) == 0 and text.startswith(f"{mods[0].path} {mods[0].version} h1:".encode())
    tree = db.signed_tree.decode()
    assert tree.startswith(f"go.sum database tree\n{len(mods)}\n")
    assert f"\n\n— sum.golang.org {base64.b64encode(bytes.fromhex(keyhash)).decode()[:4]}" in tree
    assert db.tile(f"tile/8/0/000.p/{len(mods)}") == b"".join(record_hash(m.sumdb_record()) for m in mods)
    assert db.tile(f"tile/8/data/000.p/{len(mods)}") == b"".join(m.sumdb_record() + b"\n" for m in mods)
    assert db.tile(f"tile/8/0/000.p/{len(mods) + 1}") is None


def test_module_hash_matches_what_the_go_command_computed() -> None:
    # The go command itself reported this h1: for the lab's vanity.example/m v1.1.0 zip
    # (`go mod download -json`, in the lab); our dirhash must agree or the lab sumdb would fail.
    m = next(m for m in lab_modules() if (m.path, m.version) == ("vanity.example/m", "v1.1.0"))
    assert m.zip_hash() == "h1:G8LDu3MRL4TCD6EQOJwkXw4ccpp/zVcwUPUjMdTxNs0="
    assert m.mod_hash() == "h1:wSykdUBGsIxwBrRWV8XousFSxSrF1t0VwzRdE/NYHrI="


def test_module_zips_are_small_and_prefixed() -> None:
    import io
    import zipfile

    for m in lab_modules():
        assert len(m.zip_bytes) < 2048
        names = zipfile.ZipFile(io.BytesIO(m.zip_bytes)).namelist()
        assert all(n.startswith(f"{m.path}@{m.version}/") for n in names)


# -- certificates -----------------------------------------------------------------------------------
def test_leaf_certificates_name_host_and_issuer() -> None:
    from cryptography import x509

    for ca_name in (LAB_CA_NAME, INTERCEPT_CA_NAME):
        ca = make_ca(ca_name)
        chain, _key = issue(ca, "proxy.golang.org")
        leaf = x509.load_pem_x509_certificates(chain)[0]
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["proxy.golang.org"]
        cn = leaf.issuer.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
        assert cn == ca_name


# -- log parsers -----------------------------------------------------------------------------------
DNSMASQ_SAMPLE = """\
Nov 26 01:56:35 dnsmasq[13781]: started, version 2.90 cachesize 150
Nov 26 01:56:35 dnsmasq[13781]: 1 10.77.5.2/37783 query[A] proxy.golang.org from 10.77.5.2
Nov 26 01:56:35 dnsmasq[13781]: 1 10.77.5.2/37783 config proxy.golang.org is 10.77.5.1
Nov 26 01:56:35 dnsmasq[13781]: 2 10.77.5.2/37455 query[AAAA] proxy.golang.org from 10.77.5.2
Nov 26 01:56:35 dnsmasq[13781]: 2 10.77.5.2/37455 config proxy.golang.org is NODATA-IPv6
"""


def test_parse_dnsmasq_log() -> None:
    queries = parse_dnsmasq_log(DNSMASQ_SAMPLE)
    assert [(q["name"], q["qtype"], q["client_port"], q["answers"]) for q in queries] == [
        ("proxy.golang.org", "A", 37783, ["10.77.5.1"]),
        ("proxy.golang.org", "AAAA", 37455, ["NODATA-IPv6"]),
    ]


def test_parse_tinyproxy_and_go_x() -> None:
    lines = ["CONNECT   Nov 26 02:01:00.120 [99]: Request (file descriptor 7): "
             "CONNECT proxy.golang.org:443 HTTP/1.1"]
    assert parse_tinyproxy_log(lines) == [
        {"method": "CONNECT", "target": "proxy.golang.org:443", "host": "proxy.golang.org"}]
    stderr = ("# get https://proxy.golang.org/x/@v/list\n"
              "# get https://proxy.golang.org/x/@v/list: 200 OK (0.010s)\n")
    assert parse_go_x(stderr) == [{"url": "https://proxy.golang.org/x/@v/list",
                                   "result": "200 OK (0.010s)"}]


@pytest.mark.parametrize(("host", "path", "process", "op"), [
    ("proxy.golang.org", "/vanity.example/m/@v/list", "go", "module-list"),
    ("proxy.golang.org", "/vanity.example/m/@v/v1.0.0.zip", "go", "module-zip"),
    ("proxy.golang.org", "/vanity.example/m/@latest", "go", "module-latest"),
    ("proxy.golang.org", "/sumdb/sum.golang.org/supported", "go", "sumdb-supported"),
    ("sum.golang.org", "/lookup/vanity.example/m@v1.0.0", "go", "sumdb-lookup"),
    ("sum.golang.org", "/tile/8/0/000.p/5", "go", "sumdb-tile"),
    ("proxy.golang.org", "/golang.org/toolchain/@v/v0.0.1-go1.99.0.linux-amd64.zip", "go",
     "toolchain-download"),
    ("dl.google.com", "/go/v0.0.1-go1.99.0.linux-amd64.zip", "go", "toolchain-download"),
    ("vanity.example", "/m?go-get=1", "go", "go-get-meta"),
    ("proxy.golang.org", "/golang.org/x/tools/gopls/@v/v0.20.0.info", "node", "gopls-version-check"),
    ("go.dev", "/dl/?mode=json", "node", "go-release-check"),
])
def test_operation_for(host: str, path: str, process: str, op: str) -> None:
    assert operation_for(host, path, process) == op


def test_process_from_user_agent() -> None:
    assert process_from_user_agent("GoCommand/1 (+https://go.dev/cmd/go)") == "go"
    assert process_from_user_agent("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)") == "node"
    assert process_from_user_agent("curl/7.88.1") == "curl"
    assert process_from_user_agent(None) is None


def test_expect_toml_names_lab_ca_and_addresses() -> None:
    data = tomllib.loads(expect_toml())
    assert data["hosts"]["proxy.golang.org"] == {"addresses": ["10.77.0.0/16"],
                                                 "issuers": [LAB_CA_NAME]}
    assert "goproxy.example" in data["hosts"]


# -- the recorded captures ---------------------------------------------------------------------------
def test_every_scenario_is_recorded() -> None:
    missing = [n for n in SCENARIOS if not (CAPTURES / f"{n}.pcapng").exists()
               or not (CAPTURES / f"{n}.json").exists()]
    assert missing == [], "re-record with `make lab` (root)"
    assert (CAPTURES / "lab-expect.toml").read_text() == expect_toml()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_manifest_is_derived_from_its_logs(name: str) -> None:
    """Re-deriving the expected contacts from the logs stored in the manifest gives the same list."""
    path = CAPTURES / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not recorded")
    m = json.loads(path.read_text())
    assert m["scenario"] == name and m["expected"]
    lab = m["lab"]
    expected = derive_expected(
        client_ip=lab["client_ip"], proxy_ip=lab["server_ip"] if lab["proxy"] else None,
        watch=WatchList.build([*DEFAULT_HOSTS, *m["watch"]]), server_events=m["server_log"],
        dns_queries=m["dns_log"], proxy_requests=m["proxy_log"],
        findings=SCENARIOS[name].findings, socks_requests=m.get("socks_log", []),
        socks_clients=m.get("socks_clients", []),
        owners=socket_owners(m["strace"]["processes"], m["strace"]["connections"],
                             lab["server_ip"]) if "strace" in m else None)
    assert expected == m["expected"]
    assert m["go_x_not_in_server_log"] == []
    assert (CAPTURES / f"{name}.pcapng").stat().st_size < 200_000  # packets + process comments


def _hosts(m: dict, layer: str | None = None) -> set[str]:
    return {e["host"] for e in m["expected"] if layer is None or e["layer"] == layer}


def test_recorded_hosts_match_the_facts() -> None:
    by_name = {m["scenario"]: m for m in manifests()}
    if len(by_name) < len(SCENARIOS):
        pytest.skip("not every scenario is recorded")
    assert {"proxy.golang.org", "sum.golang.org"} <= _hosts(by_name["default"], "tls")
    assert "sum.golang.org" in _hosts(by_name["direct-sumdb"], "tls")
    assert "proxy.golang.org" not in _hosts(by_name["direct-sumdb"])
    assert not _hosts(by_name["direct-nosumdb"]) & GOOGLE_HOSTS
    x = by_name["direct-golang-x"]
    assert _hosts(x, "tls") == {"golang.org", "go.googlesource.com", "sum.golang.org"}
    assert {e["process"] for e in x["expected"] if e["host"] == "go.googlesource.com"} == {
        "git-remote-http"}
    # A mirror that proxies the checksum database hides sum.golang.org entirely.
    assert not _hosts(by_name["mirror"]) & GOOGLE_HOSTS
    assert "vanity.example" in _hosts(by_name["mirror-direct"], "tls")
    assert _hosts(by_name["toolchain-direct"], "tls") == {"golang.org", "go.dev", "dl.google.com",
                                                          "sum.golang.org"}
    assert {e["process"] for e in by_name["editor-node"]["expected"]} == {"node"}
    assert {e["process"] for e in by_name["mixed"]["expected"]} == {"go", "node", "curl"}
    assert not _hosts(by_name["forward-proxy"], "dns")
    connects = [e for e in by_name["forward-proxy"]["expected"] if e.get("method") == "CONNECT"]
    assert len(connects) == len(_tls(by_name["forward-proxy"]))
    assert {e["cert_issuer"] for e in _tls(by_name["interception"])} == {INTERCEPT_CA_NAME}


def _tls(m: dict) -> list[dict]:
    return [e for e in m["expected"] if e["layer"] == "tls"]


def test_go_clienthello_spans_two_segments_in_default_capture() -> None:
    """The go command's ClientHello (post-quantum key share) needs two TCP segments at MTU 1500."""
    path = CAPTURES / "default.pcapng"
    if not path.exists():
        pytest.skip(f"{path} not recorded")
    spans = _clienthello_segments(path)
    assert spans, "no ClientHello found"
    assert all(n == 2 for n in spans.values()), spans


def _clienthello_segments(path: Path) -> dict[int, int]:
    """client port -> number of TCP segments carrying its first TLS record (the ClientHello)."""
    first: dict[int, list[bytes]] = {}
    with path.open("rb") as fh:
        for _ts, buf in dpkt.pcapng.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            if tcp.dport != 443 or not tcp.data:
                continue
            first.setdefault(tcp.sport, []).append(bytes(tcp.data))
    spans = {}
    for port, segments in first.items():
        head = segments[0]
        if head[:1] != b"\x16":
            continue
        need, got, n = 5 + int.from_bytes(head[3:5], "big"), 0, 0
        for seg in segments:
            got += len(seg)
            n += 1
            if got >= need:
                break
        spans[port] = n
    return spans


def test_clean_captures_count_protocol_layers() -> None:
    m = next((m for m in manifests() if m["scenario"] == "default"), None)
    if m is None:
        pytest.skip("default not recorded")
    assert Counter(e["layer"] for e in m["expected"]) == Counter(
        {"dns": len([q for q in m["dns_log"] if q["client_ip"] == m["lab"]["client_ip"]]),
         "tls": len([e for e in m["server_log"] if e.get("event") == "tls"])})


# -- key logs ----------------------------------------------------------------------------------------
def _first_segments(path: Path) -> dict[int, bytes]:
    """client port -> the first TCP payload it sent to port 443 (the ClientHello's first segment)."""
    first: dict[int, bytes] = {}
    with path.open("rb") as fh:
        for _ts, buf in dpkt.pcapng.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
                tcp = ip.data
                if tcp.dport == 443 and tcp.data:
                    first.setdefault(tcp.sport, bytes(tcp.data))
    return first


def test_server_logs_the_clienthello_random_on_the_wire() -> None:
    """The random the lab server peeks from each ClientHello is the one in the capture."""
    m = next((m for m in manifests() if m["scenario"] == "default"), None)
    if m is None:
        pytest.skip("default not recorded")
    segments = _first_segments(CAPTURES / "default.pcapng")
    logged = {e["client_port"]: e["client_random"] for e in m["server_log"] if e.get("event") == "tls"}
    assert logged and {port: client_random(segments[port]) for port in logged} == logged
    assert client_random(segments[next(iter(logged))][:42]) is None  # cut before the random ends
    assert client_random(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(20)) is None


def test_merge_keylogs_keeps_each_secret_once() -> None:
    path = CAPTURES / "mixed.keylog"
    if not path.exists():
        pytest.skip(f"{path} not recorded")
    lines = path.read_text().splitlines()
    assert lines and all(len(line.split()) == 3 for line in lines)
    header = "# TLS secrets log file, generated by OpenSSL / Python\n"
    client = "".join(f"{line}\n" for line in lines[:3])
    merged = merge_keylogs(header + path.read_text(), "\n" + client)
    assert merged.splitlines() == lines  # no comment, no blank line, no duplicate
    assert merge_keylogs("", header) == ""


def test_every_tls_capture_has_its_keylog() -> None:
    """Every scenario with a TLS handshake in the server log ships a key log holding the keys of
    every handshake (the ClientHello randoms the server logged)."""
    found = manifests()
    if not found:
        pytest.skip("no scenario recorded")
    for m in found:
        randoms = {e["client_random"] for e in m["server_log"] if e.get("event") == "tls"}
        path = CAPTURES / f"{m['scenario']}.keylog"
        assert path.exists() == bool(randoms), m["scenario"]
        if randoms:
            keyed = {line.split()[1] for line in path.read_text().splitlines()}
            assert randoms <= keyed, m["scenario"]
            assert m["keylog"] == path.name
