"""``proxytrace probe`` inside the lab's client namespace reports the lab's hijacks live.

The same three hijack scenarios as the recorded captures (tests/findings/test_lab_captures.py):
the resolver rewrites proxy.golang.org, an interception certificate, an https to http redirect;
and a clean lab yields no finding at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fixtures import shared_lab  # noqa: F401 - fixture
from tests.lab.netlab import Lab
from tests.lab.record import expect_toml

pytestmark = pytest.mark.lab


def probe(lab: Lab, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]]]:
    expect = lab.tmp / "probe-expect.toml"
    if not expect.exists():
        expect.write_text(expect_toml())
    proc = lab.run_client([sys.executable, "-m", "analyzer.cli", "probe", "--format", "json",
                           "--timeout", "2", "--expect", str(expect), *args],
                          env=lab.client_env(env), timeout=120, cwd=Path(lab.tmp))
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def kinds(rows: list[dict[str, Any]]) -> set[str]:
    return {f["kind"] for r in rows for f in r["findings"]}


def test_clean_lab_has_no_finding(shared_lab: Lab) -> None:  # noqa: F811
    status, rows = probe(shared_lab, "proxy.golang.org", "sum.golang.org", "go.dev")
    assert kinds(rows) == set()
    assert status == 0
    assert {r["layer"] for r in rows} == {"system", "dns", "tls", "http"}


def test_resolver_rewrite_live(shared_lab: Lab) -> None:  # noqa: F811
    shared_lab.set_answer("proxy.golang.org", shared_lab.other_ip)
    try:
        status, rows = probe(shared_lab, "proxy.golang.org")
    finally:
        shared_lab.set_answer("proxy.golang.org", shared_lab.server_ip)
    assert kinds(rows) == {"dns-unexpected-answer"}
    assert status == 1
    flagged = [r for r in rows if r["findings"]]
    assert {r["check"] for r in flagged} >= {"getaddrinfo", "resolver A"}
    assert all(shared_lab.other_ip in r["findings"][0]["detail"] for r in flagged)


def test_interception_certificate_live(shared_lab: Lab) -> None:  # noqa: F811
    shared_lab.restart_server(intercept=True)
    try:
        status, rows = probe(shared_lab, "proxy.golang.org", "sum.golang.org", "--only", "tls",
                             env={"SSL_CERT_FILE": shared_lab.trust_bundle(intercept=True)})
    finally:
        shared_lab.restart_server(intercept=False)
    assert kinds(rows) == {"tls-untrusted-issuer"}
    assert status == 1
    details = [f["detail"] for r in rows for f in r["findings"]]
    assert len(details) == 2 and all("proxytrace interception CA" in d for d in details)


def test_https_to_http_redirect_live(shared_lab: Lab) -> None:  # noqa: F811
    status, rows = probe(shared_lab, "vanity.example", "--only", "http", "--path", "/download")
    assert kinds(rows) == {"http-downgrade-redirect"}
    assert status == 1
    https = next(r for r in rows if r["target"] == "https://vanity.example/download")
    assert https["findings"][0]["kind"] == "http-downgrade-redirect"
    status, rows = probe(shared_lab, "vanity.example", "--only", "http", "--path", "/download",
                         "--no-fail")
    assert status == 0 and kinds(rows) == {"http-downgrade-redirect"}
