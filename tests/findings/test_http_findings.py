"""HTTP findings: a real plaintext capture, and HTTP messages parsed from real request/response text."""

from __future__ import annotations

from pathlib import Path

from analyzer.base.watchlist import WatchList
from analyzer.events.records import Evidence
from analyzer.findings import apply_findings
from analyzer.findings.expect import Expectations, load_expectations
from analyzer.pipeline import AnalyzeOptions, analyze_files

from .helpers import http_contact, http_exchange
from .test_tls_findings import _session, tls_contact

GO_GET = (b"GET /golang.org/x/text/@v/list HTTP/1.1\r\nHost: proxy.golang.org\r\n"
          b"User-Agent: Go-http-client/1.1\r\n\r\n")


def kinds_of(contacts):  # type: ignore[no-untyped-def]
    return [sorted(f.kind for f in c.findings) for c in contacts]


def test_plaintext_request_in_a_real_capture(shared_captures: Path) -> None:
    report = analyze_files([shared_captures / "public" / "http_proxy.pcap"],
                           AnalyzeOptions(watch=WatchList.build(["bro.org"])))
    http = [c for c in report.contacts if c.layer == "http"]
    assert http and all("http-plaintext" in [f.kind for f in c.findings] for c in http)
    first = next(f for f in http[0].findings if f.kind == "http-plaintext")
    assert first.layer == "http" and first.frames and "bro.org" in first.detail


def test_plaintext_to_a_go_host() -> None:
    ex = http_exchange(GO_GET, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    out = apply_findings([http_contact(ex)], Evidence(http=[ex]), load_expectations(),
                         WatchList.build())
    assert kinds_of(out) == [["http-plaintext"]]
    assert out[0].findings[0].frames == (4,)


def test_plaintext_redirect_offsite() -> None:
    ex = http_exchange(GO_GET, b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/x\r\n"
                               b"Content-Length: 0\r\n\r\n")
    out = apply_findings([http_contact(ex)], Evidence(http=[ex]), Expectations(), WatchList.build())
    assert kinds_of(out) == [["http-offsite-redirect", "http-plaintext"]]
    offsite = next(f for f in out[0].findings if f.kind == "http-offsite-redirect")
    assert "http://evil.example/x" in offsite.detail and offsite.frames == (4, 6)


def test_redirect_to_https_and_to_watched_hosts_is_fine() -> None:
    for location in (b"https://proxy.golang.org/x", b"https://go.dev/doc", b"/relative"):
        ex = http_exchange(GO_GET, b"HTTP/1.1 301 Moved\r\nLocation: " + location +
                           b"\r\nContent-Length: 0\r\n\r\n")
        out = apply_findings([http_contact(ex)], Evidence(http=[ex]), Expectations(),
                             WatchList.build())
        assert kinds_of(out) == [["http-plaintext"]], location


def test_connect_is_not_plaintext() -> None:
    ex = http_exchange(b"CONNECT proxy.golang.org:443 HTTP/1.1\r\nHost: proxy.golang.org:443\r\n\r\n",
                       b"HTTP/1.1 200 Connection established\r\n\r\n", port=3128)
    out = apply_findings([http_contact(ex)], Evidence(http=[ex]), Expectations(), WatchList.build())
    assert kinds_of(out) == [[]]


def test_decrypted_https_redirect_to_http_lands_on_the_tls_contact(shared_captures: Path) -> None:
    # What a key log shows: inside the TLS connection to vanity.example, a 302 to http://.
    session = _session(0x0303, shared=shared_captures)
    ex = http_exchange(b"GET /download HTTP/1.1\r\nHost: vanity.example\r\n\r\n",
                       b"HTTP/1.1 302 Found\r\nLocation: http://vanity.example/download-plain\r\n"
                       b"Content-Length: 0\r\n\r\n", server=session.flow.server, port=443, ts=2.0)
    ex = ex.__class__(ex.ts, session.flow, ex.request, ex.frames, ex.response, ex.response_frames)
    watch = WatchList.build(["vanity.example"])
    contacts = [tls_contact(session, "vanity.example", "vanity.example"), http_contact(ex)]
    out = apply_findings(contacts, Evidence(tls=[session], http=[ex]), Expectations(), watch)
    assert kinds_of(out) == [["http-downgrade-redirect"], []]
    detail = out[0].findings[0].detail
    assert "https://vanity.example/download" in detail and "http://vanity.example/download-plain" in detail


def test_credentials_in_a_location_are_not_repeated() -> None:
    ex = http_exchange(GO_GET, b"HTTP/1.1 302 Found\r\nLocation: http://bob:hunter2@evil.example/\r\n"
                               b"Content-Length: 0\r\n\r\n")
    out = apply_findings([http_contact(ex)], Evidence(http=[ex]), Expectations(), WatchList.build())
    assert all("hunter2" not in f.detail for f in out[0].findings)
