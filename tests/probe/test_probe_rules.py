"""The probe's pure parts: configuration files, resolver choice, proxy variables, DNS wire format."""

from __future__ import annotations

import pytest

from analyzer.base.errors import UsageError
from analyzer.base.watchlist import WatchList
from analyzer.findings.expect import load_expectations
from analyzer.probe import dnsprobe, httpprobe
from analyzer.probe.system import (
    go_resolver_choice,
    no_proxy_matches,
    nsswitch_hosts,
    parse_hosts,
    parse_resolv_conf,
    proxy_settings,
    redact_url,
)
from analyzer.protocols.dns import parse_dns

RESOLV = "# generated\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\n" \
         "search corp.example\noptions edns0 trust-ad\n"


def test_resolv_conf() -> None:
    conf = parse_resolv_conf(RESOLV)
    assert conf.nameservers == ("127.0.0.53", "fe80::1%eth0")
    assert conf.search == ("corp.example",)
    assert conf.options == ("edns0", "trust-ad")


def test_hosts_file() -> None:
    hosts = parse_hosts("127.0.0.1 localhost\n10.0.0.9 proxy.golang.org PROXY.golang.org. # pin\n"
                        "not-an-ip foo\n::1 localhost\n")
    assert hosts["proxy.golang.org"] == ("10.0.0.9",)
    assert hosts["localhost"] == ("127.0.0.1", "::1")
    assert "foo" not in hosts


def test_go_command_always_uses_the_go_resolver() -> None:
    # Release builds of cmd/go are CGO_ENABLED=0 (GO_NETWORK_FACTS section 7).
    choice = go_resolver_choice(False, {"GODEBUG": "netdns=cgo"}, None,
                                "hosts: files mdns4_minimal [NOTFOUND=return] dns\n")
    assert choice.resolver == "go" and "ignored" in choice.reason
    assert choice.order == "files,dns"


@pytest.mark.parametrize(("env", "nss", "resolv", "want"), [
    ({}, "hosts: files dns\n", RESOLV, "go"),
    ({}, "hosts: files resolve [!UNAVAIL=return] dns\n", RESOLV, "cgo"),
    ({"GODEBUG": "netdns=go+2"}, "hosts: files resolve dns\n", RESOLV, "go"),
    ({"LOCALDOMAIN": "x"}, "hosts: files dns\n", RESOLV, "cgo"),
    ({}, "hosts: files dns\n", "nameserver 1.1.1.1\noptions inet6\n", "cgo"),
    ({}, "hosts: files dns\n", None, "cgo"),
])
def test_cgo_programs_resolver_choice(env: dict[str, str], nss: str, resolv: str | None,
                                      want: str) -> None:
    conf = parse_resolv_conf(resolv) if resolv is not None else None
    assert go_resolver_choice(True, env, conf, nss).resolver == want


def test_nsswitch_hosts_line() -> None:
    assert nsswitch_hosts("passwd: files\nhosts:  files dns # c\n") == ("files", "dns")
    assert nsswitch_hosts("passwd: files\n") is None


def test_proxy_variables_upper_case_wins_and_credentials_are_hidden() -> None:
    env = {"HTTPS_PROXY": "http://alice:s3cret@proxy.corp:3128", "https_proxy": "http://other:1",
           "http_proxy": "proxy.corp:8080", "NO_PROXY": ".corp.example,10.0.0.0/8"}
    proxies, no_proxy = proxy_settings(env, {"/etc/environment": {"HTTPS_PROXY": "x"}})
    assert [(p.scheme, p.variable, p.value) for p in proxies] == [
        ("https", "HTTPS_PROXY", "http://***@proxy.corp:3128"),
        ("http", "http_proxy", "proxy.corp:8080")]
    assert proxies[0].also_in == ("/etc/environment",)
    assert no_proxy == ".corp.example,10.0.0.0/8"
    assert "s3cret" not in repr(proxies)


def test_cgi_ignores_http_proxy() -> None:
    proxies, _ = proxy_settings({"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"})
    assert proxies == []


def test_redact_url_forms() -> None:
    assert redact_url("http://u:p@[::1]:8080/") == "http://***@[::1]:8080/"
    assert redact_url("u:p@host:3128") == "***@host:3128"
    assert redact_url("http://host:3128") == "http://host:3128"


def test_no_proxy_matching() -> None:
    assert no_proxy_matches("*", "proxy.golang.org")
    assert no_proxy_matches(".golang.org", "proxy.golang.org")
    assert no_proxy_matches("golang.org", "sum.golang.org")
    assert not no_proxy_matches("go.dev", "proxy.golang.org")


def test_query_bytes_parse_back() -> None:
    wire = dnsprobe.build_query("proxy.golang.org", "AAAA", 0xBEEF)
    msg = parse_dns(wire)
    assert msg.txid == 0xBEEF and not msg.is_response and msg.recursion_desired
    assert [(q.name, q.qtype) for q in msg.questions] == [("proxy.golang.org", "AAAA")]


@pytest.mark.parametrize(("spec", "want"), [
    ("1.1.1.1", ("1.1.1.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5300", ("::1", 5300)),
])
def test_dns_server_specs(spec: str, want: tuple[str, int]) -> None:
    assert dnsprobe.parse_server(spec) == want


@pytest.mark.parametrize("spec", ["dns.google", "1.1.1.1:0", "1.1.1.1:x", "[::1]:99999"])
def test_bad_dns_server_specs(spec: str) -> None:
    with pytest.raises(UsageError):
        dnsprobe.parse_server(spec)


def test_address_rules_match_the_passive_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    exp = load_expectations()
    assert [f.kind for f in dnsprobe.judge_addresses("go.dev", ("127.0.0.1",), "x", exp)] == \
        ["dns-private-answer"]
    assert dnsprobe.judge_addresses("go.dev", ("216.239.32.21",), "x", exp) == []
    path = tmp_path / "e.toml"
    path.write_text('[hosts."go.dev"]\naddresses = ["10.0.0.0/8"]\n')
    lab = load_expectations(path)
    assert dnsprobe.judge_addresses("go.dev", ("10.1.1.1",), "x", lab) == []
    assert [f.kind for f in dnsprobe.judge_addresses("go.dev", ("8.8.8.8",), "x", lab)] == \
        ["dns-unexpected-answer"]


def test_disagreement_needs_disjoint_answers() -> None:
    same = dnsprobe.disagreements("go.dev", {"a": ("1.1.1.1", "1.0.0.1"), "b": ("1.0.0.1",)})
    assert same == []
    diff = dnsprobe.disagreements("go.dev", {"a": ("1.1.1.1",), "b": ("9.9.9.9",), "c": ()})
    assert [f.kind for f in diff] == ["dns-answer-mismatch"]


def test_redirect_judgement() -> None:
    watch = WatchList.build()
    hops = [httpprobe.Hop("https://proxy.golang.org/x", 302, "http://proxy.golang.org/x"),
            httpprobe.Hop("http://proxy.golang.org/x", 301, "https://mirror.evil.example/x"),
            httpprobe.Hop("https://mirror.evil.example/x", 200, None)]
    assert [f.kind for f in httpprobe.judge(hops, watch)] == [
        "http-downgrade-redirect", "http-offsite-redirect"]
    ok = [httpprobe.Hop("http://golang.org/", 301, "https://go.dev/")]
    assert httpprobe.judge(ok, watch) == []


def _cli(*args: str):  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    # These fail on their arguments before any packet is sent.
    return subprocess.run([sys.executable, "-m", "analyzer.cli", "probe", *args],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_bad_arguments_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _cli("--dns", "dns.google", "go.dev")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "not an IP address" in proc.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[hosts."go.dev"]\naddresses = ["nope"]\n')
    proc = _cli("--expect", str(bad), "go.dev")
    assert proc.returncode == 2 and proc.stderr.startswith(f"proxytrace: {bad}: ")
    assert "Traceback" not in proc.stderr
    proc = _cli("*.golang.org")
    assert proc.returncode == 2 and "not *.patterns" in proc.stderr
