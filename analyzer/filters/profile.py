"""A Wireshark configuration profile built from the generated filters.

Formats follow Wireshark 4.x (user guide, appendix "Configuration Files"; the UAT format is
``epan/uat.c``/``uat_load.l``):

* ``dfilters``, ``cfilters`` and (4.4+) ``dmacros``: one ``"name" expression`` per line; no
  comment lines, because 4.0's reader does not skip them.
* ``dfilter_buttons`` (UAT: enabled, label, expression, comment) and ``dfilter_macros`` (UAT,
  read before 4.4; 4.4 converts it to ``dmacros`` only when ``dmacros`` is absent, so both are
  written). Inside a UAT field a double quote must be ``\\x22``: ``\\"`` is not an escape there
  and silently truncates the entry. Non-printable bytes and backslashes are escaped the same way.
* ``colorfilters``: ``@name@filter@[fg r,g,b][bg r,g,b]`` with 16-bit components; the first
  matching rule wins, so findings come first. A profile's ``colorfilters`` replaces the default
  rules.
* ``preferences``: ``gui.column.format`` with custom columns ``%Cus:<field>:0:R`` and
  ``tls.keylog_file`` only when a key log is given.

Rendering is pure (text in a dict); writing goes through ``analyzer.base.files`` (0600).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import UsageError
from ..base.files import make_private_dir, open_private, write_private
from .display import DisplayFilter

DEFAULT_PROFILE = "proxytrace"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9 ._-]{0,63}$")
_MACRO_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# A fixed timestamp keeps the archive byte-identical between runs (zip has no "no date").
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Background colours per layer (16-bit RGB), black text; findings white on red.
_BLACK = (0, 0, 0)
_WHITE = (65535, 65535, 65535)
_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "findings": (_WHITE, (52428, 0, 0)),
    "dns": (_BLACK, (56026, 60138, 65535)),
    "tls": (_BLACK, (52942, 63222, 53199)),
    "tls-no-sni": (_BLACK, (64764, 59110, 40092)),
    "http": (_BLACK, (65535, 55512, 45746)),
    "socks": (_BLACK, (60395, 52685, 65535)),
    "process": (_BLACK, (59367, 56540, 65535)),
}

COLUMNS: tuple[tuple[str, str], ...] = (
    ("No.", "%m"),
    ("Time", "%t"),
    ("Source", "%s"),
    ("Destination", "%d"),
    ("Protocol", "%p"),
    ("Length", "%L"),
    ("DNS name", "%Cus:dns.qry.name:0:R"),
    ("SNI", "%Cus:tls.handshake.extensions_server_name:0:R"),
    ("HTTP host", "%Cus:http.host:0:R"),
    ("Process", "%Cus:frame.comment:0:R"),
    ("Info", "%i"),
)

PROFILE_FILES = ("cfilters", "colorfilters", "dfilter_buttons", "dfilter_macros", "dfilters",
                 "dmacros", "preferences")


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    name: str
    filters: tuple[DisplayFilter, ...]
    capture_filter: str | None = None
    keylog: Path | None = None


def validate_profile_name(name: str) -> str:
    """Profile names become directory names; Wireshark refuses ``\\/:*?"<>|`` and leading dots."""
    if not _PROFILE_NAME.match(name) or name.strip() != name:
        raise UsageError(f"invalid profile name {name!r}: use letters, digits, space, . _ - "
                         "(at most 64, not starting with a dot or space)")
    return name


def uat_quote(text: str) -> str:
    """A UAT string field: quoted, with ``"``, ``\\`` and non-printable bytes as ``\\xNN``."""
    out = []
    for byte in text.encode("utf-8"):
        if byte in (0x22, 0x5C) or byte < 0x20 or byte >= 0x7F:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(chr(byte))
    return '"' + "".join(out) + '"'


def _list_quote(text: str) -> str:
    """A name in ``dfilters``-style files: backslash escapes quotes (filter_files.c)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise UsageError(f"{what} must be a single line")
    return text


def macro_name(flt: DisplayFilter) -> str:
    name = flt.name.replace(" ", "_").replace("-", "_")
    if not _MACRO_NAME.match(name):
        raise UsageError(f"cannot make a macro name from {flt.name!r}")
    return name


def _button_label(flt: DisplayFilter) -> str:
    return "PT " + flt.name.split(" ", 1)[-1]


def render_profile(spec: ProfileSpec) -> dict[str, str]:
    """Every file of the profile, by file name, as text."""
    validate_profile_name(spec.name)
    filters = list(spec.filters)
    for f in filters:
        _one_line(f.expression, f"display filter {f.name!r}")
    files: dict[str, str] = {}
    files["dfilters"] = "".join(f"{_list_quote(f.name)} {f.expression}\n" for f in filters)
    files["dmacros"] = "".join(f"{_list_quote(macro_name(f))} {f.expression}\n" for f in filters)
    files["dfilter_macros"] = _uat_header("Display Filter Macros") + "".join(
        f"{uat_quote(macro_name(f))},{uat_quote(f.expression)}\n" for f in filters)
    files["dfilter_buttons"] = _uat_header("Display filter buttons") + "".join(
        f"\"TRUE\",{uat_quote(_button_label(f))},{uat_quote(f.expression)},"
        f"{uat_quote(f.description)}\n" for f in filters)
    files["colorfilters"] = _colorfilters(filters)
    files["cfilters"] = (f"{_list_quote('proxytrace capture')} "
                         f"{_one_line(spec.capture_filter, 'capture filter')}\n"
                         if spec.capture_filter else "")
    files["preferences"] = _preferences(spec.keylog)
    return {name: files[name] for name in PROFILE_FILES}


def _uat_header(title: str) -> str:
    return f"# {title} for the proxytrace profile (generated by proxytrace filters profile).\n"


def _rgb(colour: tuple[int, int, int]) -> str:
    return "[" + ",".join(str(c) for c in colour) + "]"


def _colorfilters(filters: Sequence[DisplayFilter]) -> str:
    lines = ["# Coloring rules of the proxytrace profile; the first matching rule wins.\n"]
    by_kind = {f.name.split(" ", 1)[-1]: f for f in filters}
    for kind in _COLOURS:
        flt = by_kind.get(kind)
        if flt is None:
            continue
        if "@" in flt.expression or "@" in flt.name:
            raise UsageError(f"filter {flt.name!r} contains '@', which colorfilters cannot hold")
        fg, bg = _COLOURS[kind]
        lines.append(f"@{flt.name}@{flt.expression}@{_rgb(fg)}{_rgb(bg)}\n")
    return "".join(lines)


def _preferences(keylog: Path | None) -> str:
    lines = [
        "# Preferences of the proxytrace profile (Wireshark 4.x).\n",
        "# Columns: the watched name per layer and the process from the capture's comments.\n",
        "gui.column.format: " + ", ".join(f'"{t}", "{f}"' for t, f in COLUMNS) + "\n",
    ]
    if keylog is not None:
        path = str(keylog)
        _one_line(path, "key log path")
        lines.append("# TLS key log (SSLKEYLOGFILE format) used to decrypt sessions.\n")
        lines.append(f"tls.keylog_file: {path}\n")
    return "".join(lines)


def write_profile(files: Mapping[str, str], out_dir: Path, name: str) -> Path:
    """Write the profile as ``out_dir/name/<file>`` (directories 0700, files 0600)."""
    target = make_private_dir(out_dir / validate_profile_name(name))
    for fname in sorted(files):
        write_private(target / fname, files[fname])
    return target


def zip_bytes_entries(files: Mapping[str, str], name: str) -> list[tuple[zipfile.ZipInfo, bytes]]:
    entries = []
    folder = zipfile.ZipInfo(f"{validate_profile_name(name)}/", date_time=_ZIP_DATE)
    folder.external_attr = (0o40700 << 16) | 0x10
    entries.append((folder, b""))
    for fname in sorted(files):
        info = zipfile.ZipInfo(f"{name}/{fname}", date_time=_ZIP_DATE)
        info.external_attr = 0o100600 << 16
        info.compress_type = zipfile.ZIP_STORED
        entries.append((info, files[fname].encode("utf-8")))
    return entries


def write_zip(files: Mapping[str, str], path: Path, name: str) -> Path:
    """An archive for Wireshark's "Configuration Profiles > Import > from zip file": one top-level
    folder named after the profile (what Wireshark's own export writes). Byte-identical for the
    same input: fixed dates, sorted entries, no compression."""
    with open_private(path, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
        for info, data in zip_bytes_entries(files, name):
            zf.writestr(info, data)
    return path
