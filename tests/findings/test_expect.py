"""Expectations files: the shipped defaults, a user's file merged over them, and bad files."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from analyzer.base.errors import UsageError
from analyzer.findings.expect import load_expectations


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expect.toml"
    path.write_text(text)
    return path


def test_shipped_defaults_cover_the_go_hosts() -> None:
    exp = load_expectations()
    for host in ("proxy.golang.org", "sum.golang.org", "go.dev", "dl.google.com"):
        entry = exp.for_host(host)
        assert entry is not None and "Google Trust Services" in entry.issuers
        assert entry.addresses == ()  # no ranges shipped: none can be sourced honestly
    assert exp.for_host("goproxy.cn") is None
    assert exp.for_host("PROXY.GOLANG.ORG.") is not None


def test_user_file_merges_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, '[hosts."proxy.golang.org"]\naddresses = ["10.77.0.0/16"]\n'
                           '[hosts."*.example.com"]\nissuers = ["Example CA"]\n'
                           '[hosts."a.b.example.com"]\nmin_tls_version = "1.3"\n')
    exp = load_expectations(path)
    proxy = exp.for_host("proxy.golang.org")
    assert proxy is not None
    assert proxy.addresses == (ipaddress.ip_network("10.77.0.0/16"),)
    assert "Google Trust Services" in proxy.issuers  # key not given: shipped value kept
    assert exp.for_host("x.example.com").issuers == ("Example CA",)  # type: ignore[union-attr]
    exact = exp.for_host("a.b.example.com")
    assert exact is not None and exact.min_tls_version == "1.3" and exact.issuers == ("Example CA",)
    assert exp.for_host("example.com") is None


def test_user_wildcard_beats_shipped_exact_name(tmp_path: Path) -> None:
    exp = load_expectations(write(tmp_path, '[hosts."*.golang.org"]\nissuers = ["Lab CA"]\n'))
    assert exp.for_host("sum.golang.org").issuers == ("Lab CA",)  # type: ignore[union-attr]
    assert exp.for_host("go.dev").issuers[0] == "Google Trust Services"  # type: ignore[union-attr]


def test_issuer_matching_is_by_cn_or_o_case_insensitive() -> None:
    entry = load_expectations().for_host("go.dev")
    assert entry is not None
    assert entry.issuer_allowed(("WR2", "Google Trust Services"))
    assert entry.issuer_allowed(("GTS CA 1C3", "google trust services llc"))
    assert not entry.issuer_allowed(("Evil Corp Inspection CA", "Evil Corp"))


@pytest.mark.parametrize(("text", "message"), [
    ("[hosts.\"go.dev\"\n", "not valid TOML"),
    ('[hosts."go.dev"]\naddresses = ["10.0.0.0/33"]\n', "not an address or CIDR range"),
    ('[hosts."go.dev"]\naddresses = "10.0.0.0/8"\n', "must be a list"),
    ('[hosts."go.dev"]\nissuers = [1]\n', "issuers must be a list of non-empty strings"),
    ('[hosts."go.dev"]\ncolour = "blue"\n', "unknown key(s) colour"),
    ('[hosts."bad name!"]\nissuers = ["x"]\n', "invalid hostname"),
    ('[hosts."go.dev"]\nmin_tls_version = "1.4"\n', "min_tls_version must be one of"),
    ('hosts = 3\n', "'hosts' must be a table"),
    ('[servers]\n', "unknown top-level key"),
])
def test_bad_files_are_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_expectations(path)
    text_out = str(err.value)
    assert text_out.startswith(f"{path}: ") and message in text_out and "\n" not in text_out


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read expectations file"):
        load_expectations(tmp_path / "missing.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_expectations(binary)
