"""``proxytrace probe`` against a fake network in a namespace of its own (real sockets, real TLS)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .netns import CA, FakeNet, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=unavailable_reason() or "")

GOOD, EVIL, MIRROR = "127.0.0.2", "127.0.0.3", "127.0.0.4"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> FakeNet:
    tmp = tmp_path_factory.mktemp("fakenet")
    good, evil = CA("probe test CA"), CA("probe interception CA")
    (tmp / "trusted.pem").write_bytes(good.pem() + evil.pem())
    (tmp / "expect.toml").write_text(
        '[hosts."*.golang.org"]\naddresses = ["127.0.0.2/32", "127.0.0.3/32"]\n'
        'issuers = ["probe test CA"]\n'
        '[hosts."goproxy.example"]\naddresses = ["127.0.0.4/32"]\nissuers = ["probe test CA"]\n')
    config = {
        "answers": {"proxy.golang.org": [GOOD], "sum.golang.org": [EVIL],
                    "goproxy.example": [MIRROR], "dl.google.com": [GOOD]},
        "inject": {"dl.google.com": "10.9.9.9"},
        "servers": {GOOD: good.issue("proxy.golang.org", tmp),
                    EVIL: evil.issue("sum.golang.org", tmp),
                    MIRROR: good.issue("goproxy.example", tmp)},
        "redirects": {"/redirect/x": "http://goproxy.example/x"},
    }
    with FakeNet(tmp, config) as fake:
        fake.tmp = tmp  # type: ignore[attr-defined]
        yield fake


def probe(net: FakeNet, *args: str) -> tuple[int, list[dict[str, object]]]:
    tmp: Path = net.tmp  # type: ignore[attr-defined]
    proc = net.run([sys.executable, "-m", "analyzer.cli", "probe", "--format", "json",
                    "--timeout", "1", "--expect", str(tmp / "expect.toml"), *args],
                   env={"SSL_CERT_FILE": str(tmp / "trusted.pem")})
    assert proc.stderr == "" or "warning" in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def kinds(rows: list[dict[str, object]], host: str | None = None) -> list[str]:
    return sorted(f["kind"] for r in rows if host is None or r["host"] == host  # type: ignore[index]
                  for f in r["findings"])  # type: ignore[attr-defined]


def test_clean_host_has_no_finding(net: FakeNet) -> None:
    status, rows = probe(net, "proxy.golang.org")
    assert kinds(rows) == []
    assert status == 0
    tls = [r for r in rows if r["layer"] == "tls"]
    assert [r["target"] for r in tls] == [f"{GOOD}:443"]
    assert tls[0]["data"]["verify"]["system"]["ok"] is True  # type: ignore[index]
    assert tls[0]["data"]["verify"]["certifi"]["ok"] is False  # type: ignore[index]
    redirects = {r["target"]: r["detail"] for r in rows if r["layer"] == "http"}
    assert redirects == {"http://proxy.golang.org/": "200", "https://proxy.golang.org/": "200"}
    resolver = [r for r in rows if r["check"] == "go-resolver"]
    assert resolver and resolver[0]["data"]["resolver"] == "go"  # type: ignore[index]


def test_interception_certificate_is_flagged(net: FakeNet) -> None:
    status, rows = probe(net, "sum.golang.org", "--only", "tls")
    assert kinds(rows) == ["tls-untrusted-issuer"]
    assert status == 1
    detail = next(f["detail"] for r in rows for f in r["findings"])  # type: ignore[attr-defined]
    assert "probe interception CA" in detail


def test_interception_ca_named_without_expectations(net: FakeNet) -> None:
    tmp: Path = net.tmp  # type: ignore[attr-defined]
    proc = net.run([sys.executable, "-m", "analyzer.cli", "probe", "--format", "json",
                    "--timeout", "1", "--only", "tls", "sum.golang.org", "goproxy.example"],
                   env={"SSL_CERT_FILE": str(tmp / "trusted.pem")})
    rows = json.loads(proc.stdout)
    # Without an address expectation the loopback answers are bogons; the chains that only the
    # machine's store trusts are named as interception CAs (the shipped issuer expectation for
    # sum.golang.org, Google Trust Services, flags its certificate instead).
    assert kinds(rows, "goproxy.example") == ["tls-interception-ca"]
    assert kinds(rows, "sum.golang.org") == ["tls-untrusted-issuer"]
    assert proc.returncode == 1


def test_resolver_rewrite_outside_expected_ranges(net: FakeNet) -> None:
    status, rows = probe(net, "dl.google.com", "--only", "dns")
    # The injected 10.9.9.9 races the real answer: both the duplicate and its address show.
    found = kinds(rows)
    assert "dns-duplicate-response" in found
    assert "dns-private-answer" in found
    assert status == 1


def test_https_to_http_redirect(net: FakeNet) -> None:
    status, rows = probe(net, "goproxy.example", "--only", "http", "--path", "/redirect/x")
    https = next(r for r in rows if r["target"] == "https://goproxy.example/redirect/x")
    assert [f["kind"] for f in https["findings"]] == ["http-downgrade-redirect"]  # type: ignore[attr-defined]
    assert status == 1


def test_unreachable_is_reported_not_a_hang(net: FakeNet) -> None:
    status, rows = probe(net, "nothing.example", "--dns", "127.0.0.9", "--no-system-resolvers")
    assert "probe-unreachable" in kinds(rows)
    assert status == 0


def test_every_default_host_with_no_route(net: FakeNet) -> None:
    # 192.0.2.1 has no route inside the namespace: each query fails at once, each host's HTTP
    # checks find no address; the run ends with findings, not a hang (pytest-timeout guards it).
    status, rows = probe(net, "--dns", "192.0.2.1", "--no-system-resolvers", "--only", "dns",
                         "--only", "http")
    hosts = {r["host"] for r in rows}
    assert {"proxy.golang.org", "sum.golang.org", "goproxy.cn", "vuln.go.dev"} <= hosts
    unreachable = [r for r in rows if r["status"] == "unreachable"]
    assert {r["target"] for r in unreachable if r["layer"] == "dns"} == {"192.0.2.1"}
    assert status == 1  # proxy.golang.org and friends still resolve to loopback in this net
