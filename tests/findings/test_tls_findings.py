"""TLS findings: real sessions from public captures, and hand-built flights for the edge cases."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from analyzer.base.model import Contact, TlsInfo
from analyzer.base.watchlist import WatchList
from analyzer.events.builtin.read import read_evidence_builtin
from analyzer.events.records import Evidence, FlowRef, TlsSession
from analyzer.findings import apply_findings
from analyzer.findings.expect import Expectations, HostExpectation, load_expectations
from analyzer.findings.tls import NOTE_TLS13, name_matches
from analyzer.protocols.certificate import CertificateInfo
from analyzer.protocols.tls import ServerFlight, ServerHello

WATCH = WatchList.build(["*.google.com"])


def evidence_of(shared: Path, name: str) -> Evidence:
    return read_evidence_builtin(shared / "public" / name)


def tls_contact(session: TlsSession, host: str, sni: str | None = None) -> Contact:
    flight = session.server
    version = None
    if flight is not None and flight.server_hello is not None:
        version = {0x0301: "TLS 1.0", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}.get(
            flight.server_hello.version)
    return Contact(ts=session.ts, layer="tls", host=host, transport="tcp", src=session.flow.client,
                   sport=session.flow.client_port, dst=session.flow.server,
                   dport=session.flow.server_port, flow_id=session.flow.flow_id,
                   frames=session.frames + session.server_frames,
                   tls=TlsInfo(sni=sni, alpn=(), version=version, ja4=None, ja3=None,
                               name_from_dns=sni is None))


def kinds(contacts: list[Contact]) -> list[list[str]]:
    return [sorted(f.kind for f in c.findings) for c in contacts]


def test_google_certificate_for_a_go_host_is_flagged(shared_captures: Path) -> None:
    # The capture's server is Google's, its leaf issued by "Google Internet Authority G2" for
    # *.google.com; pretend the address had been the DNS answer for proxy.golang.org.
    ev = evidence_of(shared_captures, "tls_google-duplicate.pcap")
    contacts = [tls_contact(s, "proxy.golang.org") for s in ev.tls]
    out = apply_findings(contacts, ev, load_expectations(), WATCH)
    assert kinds(out) == [["tls-sni-cert-mismatch", "tls-untrusted-issuer"]] * 2
    issuer = next(f for f in out[0].findings if f.kind == "tls-untrusted-issuer")
    assert "Google Internet Authority G2" in issuer.detail
    assert "Google Trust Services" in issuer.detail
    assert issuer.frames == ev.tls[0].server_frames == (6, 7, 9)
    mismatch = next(f for f in out[0].findings if f.kind == "tls-sni-cert-mismatch")
    assert "no SNI sent" in mismatch.detail and "*.google.com" in mismatch.detail


def test_google_certificate_for_google_is_clean(shared_captures: Path) -> None:
    ev = evidence_of(shared_captures, "tls_google-duplicate.pcap")
    expect = Expectations((HostExpectation("*.google.com", (), ("Google Inc",)),))
    contacts = [tls_contact(s, "www.google.com") for s in ev.tls]
    assert kinds(apply_findings(contacts, ev, expect, WATCH)) == [[], []]


def test_server_choosing_tls10_is_a_downgrade(shared_captures: Path) -> None:
    # Zeek's cert-no-cn trace: the client offers TLS 1.2, the server answers TLS 1.0 with a
    # certificate that has neither CN nor SAN.
    ev = evidence_of(shared_captures, "tls_cert-no-cn.pcap")
    out = apply_findings([tls_contact(ev.tls[0], "intranet.example.com")], ev, Expectations(),
                         WatchList.build(["intranet.example.com"]))
    assert kinds(out) == [["tls-sni-cert-mismatch", "tls-version-downgrade"]]
    downgrade = next(f for f in out[0].findings if f.kind == "tls-version-downgrade")
    assert "offered up to TLS 1.2" in downgrade.detail and "chose TLS 1.0" in downgrade.detail


def _session(version: int, certs: tuple[CertificateInfo, ...] = (), offered: int = 0x0304,
             shared: Path | None = None) -> TlsSession:
    base = read_evidence_builtin(shared / "public" / "tls_google-duplicate.pcap").tls[0]  # type: ignore[operator]
    hello = dataclasses.replace(base.client_hello, versions=(0x0304, 0x0303) if offered == 0x0304
                                else (), legacy_version=0x0303)
    flight = ServerFlight(ServerHello(0x0303, version, 0x1301, None, (), False), certs, None, True)
    flow = FlowRef("tcp", "192.0.2.10", 50000, "192.0.2.80", 443, "t.pcap")
    return TlsSession(1.0, flow, hello, (3,), 1, flight, (5,))


def _cert(subject_cn: str, issuer_cn: str, self_signed: bool, sans: tuple[str, ...]) -> CertificateInfo:
    return CertificateInfo(subject=f"CN={subject_cn}", issuer=f"CN={issuer_cn}",
                           subject_cn=subject_cn, issuer_cn=issuer_cn, issuer_o=None, sans=sans,
                           self_signed=self_signed, not_before=None, not_after=None, sha256="ab" * 32)


def test_tls13_without_certificate_is_a_note(shared_captures: Path) -> None:
    session = _session(0x0304, shared=shared_captures)
    out = apply_findings([tls_contact(session, "proxy.golang.org", "proxy.golang.org")],
                         Evidence(tls=[session]), load_expectations(), WatchList.build())
    assert out[0].findings == ()
    assert NOTE_TLS13 in out[0].notes


def test_tls12_when_13_offered_needs_an_expectation(shared_captures: Path) -> None:
    leaf = _cert("go.dev", "WR2", False, ("go.dev",))
    session = _session(0x0303, (leaf,), shared=shared_captures)
    contact = tls_contact(session, "go.dev", "go.dev")
    plain = Expectations((HostExpectation("go.dev", (), ("WR2",)),))
    strict = Expectations((HostExpectation("go.dev", (), ("WR2",), "1.3"),))
    assert kinds(apply_findings([contact], Evidence(tls=[session]), plain, WatchList.build())) == [[]]
    out = apply_findings([contact], Evidence(tls=[session]), strict, WatchList.build())
    assert kinds(out) == [["tls-version-downgrade"]]


def test_self_signed_without_issuer_expectation(shared_captures: Path) -> None:
    leaf = _cert("goproxy.io", "goproxy.io", True, ("goproxy.io",))
    session = _session(0x0303, (leaf,), shared=shared_captures)
    out = apply_findings([tls_contact(session, "goproxy.io", "goproxy.io")],
                         Evidence(tls=[session]), load_expectations(), WatchList.build())
    assert kinds(out) == [["tls-self-signed"]]


def test_self_signed_with_expected_issuer_is_one_finding(shared_captures: Path) -> None:
    leaf = _cert("proxy.golang.org", "proxy.golang.org", True, ("proxy.golang.org",))
    session = _session(0x0303, (leaf,), shared=shared_captures)
    out = apply_findings([tls_contact(session, "proxy.golang.org", "proxy.golang.org")],
                         Evidence(tls=[session]), load_expectations(), WatchList.build())
    assert kinds(out) == [["tls-untrusted-issuer"]]
    assert "(self-signed)" in out[0].findings[0].detail


@pytest.mark.parametrize(("pattern", "name", "ok"), [
    ("*.golang.org", "proxy.golang.org", True),
    ("*.golang.org", "golang.org", False),
    ("*.golang.org", "a.b.golang.org", False),
    ("proxy.golang.org", "PROXY.golang.org.", True),
    ("*.google.com", "proxy.golang.org", False),
])
def test_name_matching(pattern: str, name: str, ok: bool) -> None:
    assert name_matches(pattern, name) is ok


def test_ip_expectation_unused_by_tls() -> None:
    # An address range alone says nothing about certificates.
    exp = HostExpectation("go.dev", (ipaddress.ip_network("10.0.0.0/8"),), ())
    assert exp.issuer_allowed(("Anyone",))
