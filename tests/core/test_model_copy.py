"""Contact copies made by the findings stage equal dataclasses.replace's."""

from __future__ import annotations

import dataclasses

from analyzer.base.model import Contact, Finding, ProcessInfo, contact_with_findings


def test_copy_with_findings_equals_replace() -> None:
    proc = ProcessInfo(pid=7, comm="go", cmdline="go mod download", ppid=1, source="ebpf")
    base = Contact(1.5, "tls", "proxy.golang.org", "tcp", "10.0.0.1", 40000, "10.0.0.2", 443,
                   "Fabc", frames=(1, 2), capture="c.pcap", process=proc, client="go",
                   operation="module-zip", notes=("a",), cause="GOPROXY", url="https://x",
                   operations=("module-zip",))
    found = (Finding("tls", "k", "d", (2,)),)
    copy = contact_with_findings(base, found, ("a", "b"), (1, 2, 3))
    assert copy == dataclasses.replace(base, findings=found, notes=("a", "b"), frames=(1, 2, 3))
    assert copy is not base and base.findings == () and copy.process is proc
    # every field is copied: one changed at a time shows up in the copy
    for field in dataclasses.fields(Contact):
        if field.name in ("findings", "notes", "frames"):
            continue
        other = dataclasses.replace(base, **{field.name: "changed"})
        assert getattr(contact_with_findings(other, (), (), ()), field.name) == "changed"
