"""vuln.go.dev in the lab: a vulnerability database in the layout golang.org/x/vuln reads.

The client (x/vuln internal/client, the same in govulncheck v1.9.0 and in the v1.4.0 gopls
v0.23.0 embeds) asks ``<db>/index/db.json.gz`` (when the database changed),
``<db>/index/modules.json.gz`` (which modules have entries) and ``<db>/ID/<id>.json.gz`` (each
entry), all gzip files read without Content-Encoding; a database other than https://vuln.go.dev
is first probed with ``HEAD <db>/index/modules.json.gz``. Entries follow the OSV schema with Go's
``ecosystem_specific.imports`` (x/vuln internal/osv).

The lab entry: vanity.example/m before v1.1.0, symbol Hello, so a workspace requiring
vanity.example/m v1.0.0 and calling m.Hello has one finding.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

MODIFIED = "2026-01-02T03:04:05Z"
LAB_VULN_ID = "GO-2026-0001"
LAB_VULN_MODULE = "vanity.example/m"
LAB_VULN_FIXED = "1.1.0"


def lab_entries() -> list[dict[str, Any]]:
    return [{
        "schema_version": "1.3.1",
        "id": LAB_VULN_ID,
        "modified": MODIFIED,
        "published": MODIFIED,
        "summary": "Hello tells where it came from in vanity.example/m (lab entry)",
        "details": "A lab vulnerability: vanity.example/m before v1.1.0 answers Hello.",
        "affected": [{
            "package": {"name": LAB_VULN_MODULE, "ecosystem": "Go"},
            "ranges": [{"type": "SEMVER",
                        "events": [{"introduced": "0"}, {"fixed": LAB_VULN_FIXED}]}],
            "ecosystem_specific": {"imports": [{"path": LAB_VULN_MODULE, "symbols": ["Hello"]}]},
        }],
        "references": [{"type": "FIX", "url": "https://vanity.example/fix"}],
        "database_specific": {"url": f"https://pkg.go.dev/vuln/{LAB_VULN_ID}"},
    }]


def _gz(obj: Any) -> bytes:
    # mtime=0: the same bytes every run.
    return gzip.compress(json.dumps(obj).encode(), mtime=0)


def database_files(entries: list[dict[str, Any]] | None = None) -> dict[str, bytes]:
    """Path under the database root (no leading slash) -> file content, .json and .json.gz."""
    entries = lab_entries() if entries is None else entries
    modules: dict[str, list[dict[str, str]]] = {}
    for entry in entries:
        for affected in entry["affected"]:
            fixed = [e["fixed"] for r in affected.get("ranges", []) for e in r["events"] if "fixed" in e]
            vuln = {"id": entry["id"], "modified": entry["modified"]}
            if fixed:
                vuln["fixed"] = fixed[-1]
            modules.setdefault(affected["package"]["name"], []).append(vuln)
    docs: dict[str, Any] = {
        "index/db": {"modified": max((e["modified"] for e in entries), default=MODIFIED)},
        "index/modules": [{"path": p, "vulns": v} for p, v in sorted(modules.items())],
    }
    for entry in entries:
        docs[f"ID/{entry['id']}"] = entry
    files: dict[str, bytes] = {}
    for name, doc in docs.items():
        files[f"{name}.json"] = json.dumps(doc).encode()
        files[f"{name}.json.gz"] = _gz(doc)
    return files
