"""Validation of what users put into filters: ports, addresses, GOPROXY and proxy values."""

from __future__ import annotations

import pytest

from analyzer.base.errors import UsageError
from analyzer.base.watchlist import WatchList
from analyzer.filters.inputs import (
    ProxyEntry,
    parse_forward_proxy,
    parse_goproxy,
    proxy_addresses,
    proxy_hostnames,
    proxy_ports,
    validate_address,
    validate_port,
)

INJECTIONS = ["proxy.golang.org or 1=1", 'proxy.golang.org"', "proxy.golang.org)",
              "(proxy.golang.org", "proxy.golang.org and tcp", "a b", "x\ny", "proxy.golang.org'",
              "proxy.golang.org || frame", "$proxytrace_dns"]


@pytest.mark.parametrize("name", INJECTIONS)
def test_hostnames_with_filter_syntax_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        WatchList.build([name])


def test_idn_names_enter_filters_in_ascii_form() -> None:
    assert WatchList.build(["bücher.example"]).exact == frozenset({"xn--bcher-kva.example"})


@pytest.mark.parametrize("value", ["0", "65536", "-1", "443)", "443 or 1=1", "", "1e3", "٤٤٣", True])
def test_bad_ports_are_refused(value: object) -> None:
    with pytest.raises(UsageError):
        validate_port(value)


@pytest.mark.parametrize("value,expected", [("1", 1), ("65535", 65535), (" 8080 ", 8080), (443, 443)])
def test_good_ports(value: object, expected: int) -> None:
    assert validate_port(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("10.0.0.1", "10.0.0.1"), ("2001:DB8::1", "2001:db8::1"), ("10.1.2.3/8", "10.0.0.0/8"),
    ("192.0.2.7/32", "192.0.2.7"),
])
def test_addresses_are_canonical(value: str, expected: str) -> None:
    assert validate_address(value) == expected


@pytest.mark.parametrize("value", ["10.0.0.1 or host 1.2.3.4", "example.com", "10.0.0.256", ""])
def test_bad_addresses_are_refused(value: str) -> None:
    with pytest.raises(UsageError):
        validate_address(value)


def test_goproxy_list_follows_the_go_command() -> None:
    entries = parse_goproxy("goproxy.cn,https://mirror.example:8443|http://10.1.2.3:8080,direct,"
                            "https://never.example")
    assert entries == (ProxyEntry("https", "goproxy.cn", 443),
                       ProxyEntry("https", "mirror.example", 8443),
                       ProxyEntry("http", "10.1.2.3", 8080))
    assert proxy_ports(entries) == (443, 8080, 8443)
    assert proxy_hostnames(entries) == ("goproxy.cn", "mirror.example")
    assert proxy_addresses(entries) == ("10.1.2.3",)


def test_goproxy_off_ends_the_list_as_in_the_go_command() -> None:
    # modfetch/proxy.go: "off" always fails hard, so the go command never reads past it
    assert parse_goproxy("mirror.example,off,https://never.example") == (
        ProxyEntry("https", "mirror.example", 443),)
    assert parse_goproxy("mirror.example|off|never.example") == (
        ProxyEntry("https", "mirror.example", 443),)


def test_goproxy_word_without_dot_colon_or_slash_is_not_a_host() -> None:
    # the go command reserves single words for built-in behaviours; it adds no https:// to them
    with pytest.raises(UsageError, match="scheme must be http or https"):
        parse_goproxy("mirror")


def test_goproxy_off_direct_and_file_have_no_endpoint() -> None:
    assert parse_goproxy("off") == ()
    assert parse_goproxy("direct") == ()
    assert parse_goproxy("file:///srv/goproxy,off") == ()


@pytest.mark.parametrize("value", ['https://a"b', "ftp://mirror.example", "https://:443",
                                   "https://mirror.example:99999", "https://mirror example"])
def test_bad_goproxy_entries_are_refused(value: str) -> None:
    with pytest.raises(UsageError):
        parse_goproxy(value)


def test_goproxy_errors_never_echo_credentials() -> None:
    with pytest.raises(UsageError) as err:
        parse_goproxy("https://user:s3cret@mirror example")
    assert "s3cret" not in str(err.value)


def test_forward_proxy_defaults() -> None:
    assert parse_forward_proxy("http://10.77.92.1:8888") == ProxyEntry("http", "10.77.92.1", 8888)
    assert parse_forward_proxy("proxy.corp.example") == ProxyEntry("http", "proxy.corp.example", 80)
    assert parse_forward_proxy("socks5://127.0.0.1") == ProxyEntry("socks5", "127.0.0.1", 1080)


def test_socks_proxy_urls_are_endpoints_and_socks_ports() -> None:
    from analyzer.filters.inputs import parse_forward_proxy, socks_proxy_ports

    entries = [parse_forward_proxy(v) for v in (
        "socks5h://10.0.0.9", "socks4a://proxy.corp.example:1081", "socks5://u:p@10.0.0.8:9050",
        "http://10.0.0.7:3128")]
    assert [(e.scheme, e.host, e.port) for e in entries] == [
        ("socks5h", "10.0.0.9", 1080), ("socks4a", "proxy.corp.example", 1081),
        ("socks5", "10.0.0.8", 9050), ("http", "10.0.0.7", 3128)]
    assert socks_proxy_ports(entries) == (1080, 1081, 9050)
