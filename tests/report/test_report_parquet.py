"""Parquet: a stable, versioned schema that mirrors the JSON contract, written 0600."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.base.model import Contact
from analyzer.report import parquet as pqmod
from analyzer.report.parquet import PARQUET_SCHEMA, write_parquet

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"

# The published schema (docs/report.md). A change here is a change for every downstream query:
# bump SCHEMA_VERSION with it.
EXPECTED = {
    "ts": "double", "time": "timestamp[us, tz=UTC]", "layer": "string", "host": "string",
    "transport": "string", "src": "string", "sport": "int32", "dst": "string", "dport": "int32",
    "process": "struct<pid: int64, comm: string, cmdline: string, ppid: int64, source: string, "
               "uid: int64, parent_comm: string, parent_cmdline: string, exe: string, "
               "env: list<element: struct<name: string, value: string>>, ancestors: "
               "list<element: struct<pid: int64, comm: string, cmdline: string, exe: string, "
               "env: list<element: struct<name: string, value: string>>>>>",
    "client": "string", "client_evidence": "string",
    "dns": "struct<qname: string, qtype: string, answers: list<element: string>, rcode: string, "
           "resolver: string, cnames: list<element: string>>",
    "tls": "struct<sni: string, alpn: list<element: string>, version: string, ja4: string, "
           "ja3: string, cert_issuer: string, cert_subject: string, cert_sans: list<element: string>, "
           "offered_version: string, name_from_dns: bool>",
    "http": "struct<method: string, path: string, user_agent: string, status: int32, "
            "location: string, url: string>",
    "via_proxy": "struct<address: string, port: int32, kind: string>",
    "operation": "string", "operations": "list<element: string>", "url": "string",
    "findings": "list<element: struct<layer: string, kind: string, detail: string, "
                "frames: list<element: int64>>>",
    "notes": "list<element: string>", "cause": "string", "flow_id": "string",
    "frames": "list<element: int64>", "capture": "string",
}


def test_schema_is_the_published_one() -> None:
    assert {f.name: str(f.type) for f in PARQUET_SCHEMA} == EXPECTED
    meta = PARQUET_SCHEMA.metadata
    assert meta[b"proxytrace.schema_version"] == pqmod.SCHEMA_VERSION.encode() == b"1.2"


def test_schema_covers_the_json_contract(contacts: list[Contact]) -> None:
    # Every field of the jsonl output has a column of the same name (plus ``time``).
    for c in contacts:
        assert set(c.to_dict()) <= set(PARQUET_SCHEMA.names)
    assert set(PARQUET_SCHEMA.names) - set(contacts[0].to_dict()) == {"time"}


def test_schema_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"`proxytrace.schema_version` = `{pqmod.SCHEMA_VERSION}`" in text
    for name in EXPECTED:
        assert f"| `{name}` |" in text, f"column {name} missing from {DOC}"


def test_round_trip(tmp_path: Path, contacts: list[Contact]) -> None:
    path = tmp_path / "contacts.parquet"
    write_parquet(contacts, str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    table = pq.read_table(path)
    assert table.schema.equals(PARQUET_SCHEMA, check_metadata=True)
    assert table.num_rows == len(contacts)
    # Same values as the jsonl output, row for row.
    rows = table.to_pylist()
    for row, contact in zip(rows, contacts, strict=True):
        expected = json.loads(json.dumps(contact.to_dict()))
        got = {k: v for k, v in row.items() if k != "time"}
        assert got == expected
        assert row["time"].timestamp() == contact.ts


def test_queries_work_on_nested_columns(tmp_path: Path, contacts: list[Contact]) -> None:
    path = tmp_path / "contacts.parquet"
    write_parquet(contacts, str(path))
    frame = pq.read_table(path).flatten().to_pandas()
    per_pid = frame.groupby("process.pid").size().to_dict()
    assert per_pid == {4121: 7, 4188: 2, 3001: 1}
    assert frame["process.pid"].isna().sum() == 4
    findings = pq.read_table(path, columns=["findings"]).column("findings").combine_chunks()
    kinds = pa.compute.list_flatten(findings).field("kind").to_pylist()
    assert sorted(kinds) == ["dns-private-answer", "http-downgrade-redirect", "http-plaintext",
                             "tls-untrusted-issuer"]


def test_empty_file_still_carries_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    write_parquet([], str(path))
    table = pq.read_table(path)
    assert table.num_rows == 0
    assert table.schema.equals(PARQUET_SCHEMA, check_metadata=True)


def test_existing_file_is_tightened(tmp_path: Path, contacts: list[Contact]) -> None:
    path = tmp_path / "old.parquet"
    path.write_bytes(b"stale")
    path.chmod(0o644)
    write_parquet(contacts[:1], str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert pq.read_table(path).num_rows == 1
