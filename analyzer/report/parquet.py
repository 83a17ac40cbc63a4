"""Contacts as Apache Parquet, with a fixed, versioned schema for DuckDB, Spark or ClickHouse.

The columns mirror the JSON output contract (../../docs/report.md lists them): nested records
(``process``, ``dns``, ``tls``, ``http``, ``via_proxy``) are Parquet structs and lists are Parquet
lists, so ``process.pid`` or ``tls.ja4`` mean the same in SQL as in ``jq``. One extra column,
``time``, holds ``ts`` as a UTC timestamp because every engine filters and buckets those natively.

Changing a column's name or type bumps ``SCHEMA_VERSION``; adding a column bumps the minor part.
pyarrow is imported only when Parquet is asked for, so the CLI starts fast.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..base.errors import UsageError
from ..base.files import open_private
from ..base.model import Contact

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_VERSION = "1.2"  # 1.1: process.ancestors and env; 1.2: via_proxy.kind
SCHEMA_VERSION_KEY = b"proxytrace.schema_version"


@functools.cache
def parquet_schema() -> pa.Schema:
    import pyarrow as pa

    def list_of(item: pa.DataType) -> pa.DataType:
        # "element" is the Parquet spec's name for list items: the schema read back from the
        # file is then identical to this one, for pyarrow, Spark and DuckDB alike.
        return pa.list_(pa.field("element", item))

    text = pa.string()
    texts = list_of(text)
    # a process's recorded variables: a list of (name, value) rather than a Parquet map, whose
    # entries group is renamed after its column when read back inside a struct
    env = list_of(pa.struct([pa.field("name", text), ("value", text)]))
    port = pa.int32()  # unsigned 16-bit values; int32 is the smallest type every engine reads alike
    fields = [
        pa.field("ts", pa.float64(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("layer", text, nullable=False),
        pa.field("host", text, nullable=False),
        pa.field("transport", text, nullable=False),
        pa.field("src", text, nullable=False),
        pa.field("sport", port, nullable=False),
        pa.field("dst", text, nullable=False),
        pa.field("dport", port, nullable=False),
        pa.field("process", pa.struct([
            pa.field("pid", pa.int64()), ("comm", text), ("cmdline", text),
            ("ppid", pa.int64()), ("source", text), ("uid", pa.int64()),
            ("parent_comm", text), ("parent_cmdline", text),
            # 1.1: the executable, the recorded environment and the ancestor chain
            ("exe", text), ("env", env), ("ancestors", list_of(pa.struct([
                pa.field("pid", pa.int64()), ("comm", text), ("cmdline", text), ("exe", text),
                ("env", env)]))),
        ])),
        pa.field("client", text),
        pa.field("client_evidence", text),
        pa.field("dns", pa.struct([
            ("qname", text), ("qtype", text), ("answers", texts), ("rcode", text),
            ("resolver", text), ("cnames", texts),
        ])),
        pa.field("tls", pa.struct([
            ("sni", text), ("alpn", texts), ("version", text), ("ja4", text), ("ja3", text),
            ("cert_issuer", text), ("cert_subject", text), ("cert_sans", texts),
            ("offered_version", text), ("name_from_dns", pa.bool_()),
        ])),
        pa.field("http", pa.struct([
            ("method", text), ("path", text), ("user_agent", text), ("status", pa.int32()),
            ("location", text), ("url", text),
        ])),
        pa.field("via_proxy", pa.struct([("address", text), ("port", port), ("kind", text)])),
        pa.field("operation", text),
        pa.field("operations", texts, nullable=False),
        pa.field("url", text),
        pa.field("findings", list_of(pa.struct([
            ("layer", text), ("kind", text), ("detail", text), ("frames", list_of(pa.int64())),
        ])), nullable=False),
        pa.field("notes", texts, nullable=False),
        pa.field("cause", text),
        pa.field("flow_id", text, nullable=False),
        pa.field("frames", list_of(pa.int64()), nullable=False),
        pa.field("capture", text),
    ]
    return pa.schema(fields, metadata={
        SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(),
        b"proxytrace.producer": f"proxytrace {__version__}".encode(),
        b"proxytrace.contract": b"one row per contact; fields as in the jsonl output",
    })


def __getattr__(name: str) -> Any:
    # PARQUET_SCHEMA reads like a constant but is built on first use (pyarrow is a slow import).
    if name == "PARQUET_SCHEMA":
        return parquet_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def contacts_table(contacts: Sequence[Contact]) -> pa.Table:
    """An Arrow table of the contacts in ``PARQUET_SCHEMA`` (also handy for pandas or DuckDB)."""
    import datetime as dt

    import pyarrow as pa

    schema = parquet_schema()
    rows = []
    for c in contacts:
        row = c.to_dict()
        row["time"] = dt.datetime.fromtimestamp(c.ts, dt.UTC)
        if row["process"] is not None:
            row["process"] = _env_as_list(row["process"])
            row["process"]["ancestors"] = [_env_as_list(a) for a in row["process"]["ancestors"]]
        rows.append({name: row.get(name) for name in schema.names})
    return pa.Table.from_pylist(rows, schema=schema)


def _env_as_list(proc: dict[str, Any]) -> dict[str, Any]:
    env = proc.get("env")
    if env is None:
        return proc
    return {**proc, "env": [{"name": k, "value": v} for k, v in env.items()]}


def parquet_bytes(contacts: Sequence[Contact]) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(contacts_table(contacts), buf, compression="snappy")
    return buf.getvalue()


def write_parquet(contacts: Sequence[Contact], path: str) -> None:
    """Write the contacts to ``path`` (mode 0600: contacts name processes and command lines)."""
    data = parquet_bytes(contacts)
    try:
        with open_private(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None
