"""Hand-built contacts shaped like a real `go mod download` session: several processes, all three
layers, findings, causes, an inferred client and contacts with no process at all."""

from __future__ import annotations

import pytest

from analyzer.base.model import (
    CaptureStats,
    Contact,
    DnsInfo,
    Finding,
    HttpInfo,
    ProcessInfo,
    ProxyHop,
    TlsInfo,
)

T0 = 1795000000.0  # 2026-11-18, a fixed epoch so rendered times are stable

GO = ProcessInfo(pid=4121, comm="go", cmdline="go mod download golang.org/x/text@v0.14.0",
                 ppid=4100, source="strace", parent_comm="bash", parent_cmdline="bash")
GIT = ProcessInfo(pid=4188, comm="git-remote-https",
                  cmdline="/usr/lib/git-core/git-remote-https origin https://go.googlesource.com/text "
                          "--with-a-very-long-argument-list-that-never-fits-in-eighty-columns",
                  ppid=4121, source="strace", parent_comm="go")
NODE = ProcessInfo(pid=3001, comm="node", cmdline="/usr/bin/node /home/u/.vscode/extensions/go/dist",
                   ppid=1, source="pcapng-comment")

GO_JA4 = "t13d1312h2_f57a46bbacb6_ab7e3b40a677"


def _dns(ts: float, host: str, proc: ProcessInfo | None, answers: tuple[str, ...],
         sport: int, findings: tuple[Finding, ...] = (), cause: str | None = None) -> Contact:
    return Contact(ts=ts, layer="dns", host=host, transport="udp", src="10.0.0.2", sport=sport,
                   dst="10.0.0.1", dport=53, flow_id=f"Fdns{sport}", frames=(int(ts - T0) + 1,),
                   capture="session.pcapng", process=proc,
                   dns=DnsInfo(qname=host, qtype="A", answers=answers, rcode="NOERROR",
                               resolver="10.0.0.1"),
                   findings=findings, cause=cause)


def _tls(ts: float, host: str, proc: ProcessInfo | None, dst: str, sport: int,
         op: str | None = None, findings: tuple[Finding, ...] = (), cause: str | None = None,
         client: str | None = None, sni: bool = True, issuer: str | None = None) -> Contact:
    return Contact(ts=ts, layer="tls", host=host, transport="tcp", src="10.0.0.2", sport=sport,
                   dst=dst, dport=443, flow_id=f"Ftls{sport}", frames=(int(ts - T0) + 3, int(ts - T0) + 4),
                   capture="session.pcapng", process=proc, client=client,
                   tls=TlsInfo(sni=host if sni else None, alpn=("h2", "http/1.1"), version="TLS 1.3",
                               ja4=GO_JA4, ja3="473cd7cb9faa642487833865d516e578",
                               cert_issuer=issuer, name_from_dns=not sni),
                   operation=op, findings=findings, cause=cause)


def _http(ts: float, host: str, proc: ProcessInfo | None, method: str, path: str, status: int | None,
          sport: int, ua: str, op: str | None = None, location: str | None = None,
          findings: tuple[Finding, ...] = (), client: str | None = None,
          client_evidence: str | None = None, cause: str | None = None,
          via: ProxyHop | None = None) -> Contact:
    return Contact(ts=ts, layer="http", host=host, transport="tcp", src="10.0.0.2", sport=sport,
                   dst="10.0.0.3", dport=80, flow_id=f"Fhttp{sport}", frames=(int(ts - T0) + 5,),
                   capture="session.pcapng", process=proc, client=client,
                   client_evidence=client_evidence,
                   http=HttpInfo(method=method, path=path, user_agent=ua, status=status,
                                 location=location, url=f"http://{host}{path}"),
                   operation=op, findings=findings, cause=cause, url=f"http://{host}{path}",
                   via_proxy=via)


SUMDB_CAUSE = "GOSUMDB=sum.golang.org (default, $GOROOT/go.env)"
PROXY_CAUSE = "GOPROXY=https://proxy.golang.org,direct (default, $GOROOT/go.env)"


def sample_contacts() -> list[Contact]:
    private = Finding(layer="dns", kind="dns-private-answer",
                      detail="sum.golang.org answered with private address 10.0.0.3", frames=(9,))
    downgrade = Finding(layer="http", kind="http-downgrade-redirect",
                        detail="https://golang.org/x/text redirected to http://golang.org/x/text?go-get=1",
                        frames=(30,))
    plaintext = Finding(layer="http", kind="http-plaintext",
                        detail="request to golang.org sent without TLS", frames=(30,))
    issuer = Finding(layer="tls", kind="tls-untrusted-issuer",
                     detail="certificate for proxy.golang.org issued by 'Corp Inspection CA'",
                     frames=(12,))
    return [
        _dns(T0 + 0.010, "proxy.golang.org", GO, ("142.250.180.17",), 40001, cause=PROXY_CAUSE),
        _tls(T0 + 0.050, "proxy.golang.org", GO, "142.250.180.17", 50001, "module-info",
             cause=PROXY_CAUSE),
        _tls(T0 + 0.300, "proxy.golang.org", GO, "142.250.180.17", 50002, "module-zip",
             cause=PROXY_CAUSE, findings=(issuer,), issuer="Corp Inspection CA"),
        _dns(T0 + 1.000, "sum.golang.org", GO, ("10.0.0.3",), 40002, findings=(private,),
             cause=SUMDB_CAUSE),
        _tls(T0 + 1.040, "sum.golang.org", GO, "10.0.0.3", 50003, "sumdb-lookup", cause=SUMDB_CAUSE),
        _tls(T0 + 1.200, "sum.golang.org", GO, "10.0.0.3", 50004, "sumdb-tile", cause=SUMDB_CAUSE),
        _http(T0 + 2.000, "golang.org", GO, "GET", "/x/text?go-get=1", 200, 50005, "GoCommand/1",
              op="go-get-meta", findings=(plaintext, downgrade), cause="GOPROXY=direct"),
        _dns(T0 + 2.500, "go.googlesource.com", GIT, ("142.251.1.82",), 40003),
        _tls(T0 + 2.550, "go.googlesource.com", GIT, "142.251.1.82", 50006, "vcs-fetch"),
        _tls(T0 + 3.000, "proxy.golang.org", NODE, "142.250.180.17", 50007, "gopls-version-check"),
        _http(T0 + 3.400, "go.dev", None, "GET", "/dl/?mode=json", 200, 50008, "node-fetch/1.0",
              op="go-release-check", client="node", client_evidence="User-Agent node-fetch/1.0"),
        _tls(T0 + 4.000, "telemetry.go.dev", None, "34.36.1.2", 50009, "telemetry", sni=False),
        _dns(T0 + 4.100, "vuln.go.dev", None, (), 40004),
        _http(T0 + 4.500, "proxy.golang.org", None, "CONNECT", "proxy.golang.org:443", 200, 50010,
              "Go-http-client/1.1", via=ProxyHop("10.0.0.9", 3128)),
    ]


def sample_stats() -> list[CaptureStats]:
    return [CaptureStats(capture="session.pcapng", packets=412, bytes=187_345, link_type="ethernet",
                         warnings=("capture was truncated in the middle of a packet",),
                         parse_errors={"dns": 1})]


@pytest.fixture
def contacts() -> list[Contact]:
    return sample_contacts()


@pytest.fixture
def stats() -> list[CaptureStats]:
    return sample_stats()
