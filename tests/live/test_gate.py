"""--deny: the CI gate."""

from __future__ import annotations

from analyzer.base.model import Contact, ProcessInfo
from analyzer.commands.gate import check_denied


def _c(host: str, layer: str = "tls") -> Contact:
    return Contact(ts=1.0, layer=layer, host=host, transport="tcp", src="10.0.0.2", sport=4000,  # type: ignore[arg-type]
                   dst="10.0.0.1", dport=443, flow_id="F1", operation="module-zip",
                   process=ProcessInfo(pid=7, comm="go", cmdline="go build", ppid=1, source="ebpf"))


def test_denied_hosts_and_patterns() -> None:
    contacts = [_c("proxy.golang.org"), _c("sum.golang.org", "dns"), _c("goproxy.cn"), _c("example.org")]
    v = check_denied(contacts, ["proxy.golang.org", "*.golang.org"])
    assert [x.contact.host for x in v] == ["proxy.golang.org", "sum.golang.org"]
    assert v[0].reason() == ("denied host proxy.golang.org contacted over tls [module-zip] by go "
                             "(pid 7) (10.0.0.2:4000 -> 10.0.0.1:443)")
    assert check_denied(contacts, []) == []


def test_github_annotation_is_one_escaped_line() -> None:
    (v,) = check_denied([_c("proxy.golang.org")], ["proxy.golang.org"])
    line = v.github_annotation()
    assert line.startswith("::error title=proxytrace deny proxy.golang.org::denied host")
    assert "\n" not in line
