"""The Wireshark profile: file formats, what tshark reads from it, the zip, permissions."""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path

import pytest

from analyzer.base.errors import UsageError
from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.events.tshark.binary import tshark_env
from analyzer.filters.bpf import capture_filter
from analyzer.filters.display import standard_filters
from analyzer.filters.profile import (
    PROFILE_FILES,
    ProfileSpec,
    render_profile,
    uat_quote,
    validate_profile_name,
    write_profile,
    write_zip,
)

from .conftest import needs_tshark, public_captures, tshark_frames

WATCH = WatchList.build([*DEFAULT_HOSTS, "secure.newegg.com", "bro.org", "*.example.com"])


def _spec(keylog: Path | None = None, name: str = "pt-test") -> ProfileSpec:
    return ProfileSpec(name, tuple(standard_filters(WATCH, ["10.0.0.1"])), capture_filter(WATCH),
                       keylog)


def parse_uat_line(line: str) -> list[str]:
    """Decode one UAT record the way epan/uat_load.l reads it (quoted fields, \\xNN escapes)."""
    fields = re.findall(r'"((?:[^"\\]|\\x[0-9a-fA-F]{2})*)"(?:,|$)', line)
    assert ",".join(f'"{f}"' for f in fields) == line, f"not a well-formed UAT record: {line}"
    return [re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), f) for f in fields]


def test_uat_quote_escapes_quotes_as_hex() -> None:
    assert uat_quote('a "b" \\c') == '"a \\x22b\\x22 \\x5cc"'
    assert "\\\"" not in uat_quote('say "hi"')


def test_every_file_is_rendered_and_deterministic() -> None:
    first, second = render_profile(_spec()), render_profile(_spec())
    assert first == second
    assert sorted(first) == sorted(PROFILE_FILES)


def test_uat_files_round_trip_to_the_filters() -> None:
    spec = _spec()
    files = render_profile(spec)
    by_name = {f.name: f for f in spec.filters}
    buttons = [ln for ln in files["dfilter_buttons"].splitlines() if not ln.startswith("#")]
    assert len(buttons) == len(spec.filters)
    for line in buttons:
        enabled, label, expression, comment = parse_uat_line(line)
        assert enabled == "TRUE" and label.startswith("PT ") and comment
        assert expression in {f.expression for f in by_name.values()}
    macros = [ln for ln in files["dfilter_macros"].splitlines() if not ln.startswith("#")]
    decoded = dict(parse_uat_line(ln) for ln in macros)  # type: ignore[misc]
    assert decoded["proxytrace_dns"] == by_name["proxytrace dns"].expression


def test_dfilters_and_dmacros_use_the_quoted_name_format() -> None:
    files = render_profile(_spec())
    for fname in ("dfilters", "dmacros", "cfilters"):
        for line in files[fname].splitlines():
            assert re.match(r'^"[^"\\]+" \S', line), (fname, line)
    assert files["dmacros"].splitlines()[0].startswith('"proxytrace_dns" dns.qry.name matches')


def test_colorfilters_put_findings_first_in_red() -> None:
    lines = [ln for ln in render_profile(_spec())["colorfilters"].splitlines()
             if ln.startswith("@")]
    assert lines[0].startswith("@proxytrace findings@")
    assert lines[0].endswith("[65535,65535,65535][52428,0,0]")
    for line in lines:
        assert re.match(r"^@[^@]+@[^@]+@\[\d+,\d+,\d+\]\[\d+,\d+,\d+\]$", line), line


def test_preferences_columns_and_keylog(tmp_path: Path) -> None:
    prefs = render_profile(_spec())["preferences"]
    for field in ("tls.handshake.extensions_server_name", "dns.qry.name", "http.host",
                  "frame.comment"):
        assert f'"%Cus:{field}:0:R"' in prefs
    assert "keylog" not in prefs
    keyed = render_profile(_spec(tmp_path / "keys.log"))["preferences"]
    assert f"tls.keylog_file: {tmp_path / 'keys.log'}\n" in keyed


@pytest.mark.parametrize("name", ["../evil", ".hidden", "a/b", 'a"b', "x" * 65, " lead", ""])
def test_bad_profile_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        validate_profile_name(name)


def test_files_are_private(tmp_path: Path) -> None:
    target = write_profile(render_profile(_spec()), tmp_path, "pt-test")
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    for fname in PROFILE_FILES:
        assert stat.S_IMODE((target / fname).stat().st_mode) == 0o600
    archive = write_zip(render_profile(_spec()), tmp_path / "pt.zip", "pt-test")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_zip_holds_one_profile_folder_and_is_reproducible(tmp_path: Path) -> None:
    files = render_profile(_spec())
    a = write_zip(files, tmp_path / "a.zip", "pt-test").read_bytes()
    b = write_zip(files, tmp_path / "b.zip", "pt-test").read_bytes()
    assert a == b
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        names = zf.namelist()
        assert names[0] == "pt-test/"
        assert sorted(names[1:]) == [f"pt-test/{f}" for f in sorted(PROFILE_FILES)]
        assert zf.read("pt-test/dfilters").decode() == files["dfilters"]


@needs_tshark
def test_tshark_loads_the_profile(tmp_path: Path) -> None:
    """Macros (the UAT file 4.0 reads), columns and key log reach tshark through -C."""
    import subprocess

    keylog = tmp_path / "keys.log"
    write_profile(render_profile(_spec(keylog)), tmp_path / "profiles", "pt-test")
    prefs = subprocess.run(  # noqa: S603 - argument list
        ["tshark", "-G", "currentprefs", "-C", "pt-test"], env=tshark_env(tmp_path),
        capture_output=True, text=True, check=True).stdout
    assert f"tls.keylog_file: {keylog}" in prefs
    assert "%Cus:tls.handshake.extensions_server_name:0:R" in prefs
    caps = {p.name: p for p in public_captures()}
    if "http_connect-with-header.pcap" not in caps:
        pytest.skip("public capture http_connect-with-header.pcap not present")
    cap = caps["http_connect-with-header.pcap"]
    via_macro = tshark_frames(cap, "${proxytrace_http}", tmp_path, "pt-test")
    direct = tshark_frames(cap, next(f.expression for f in _spec().filters
                                     if f.name == "proxytrace http"))
    assert via_macro == direct and via_macro
    assert tshark_frames(cap, "${proxytrace_tls}", tmp_path, "pt-test")


@needs_tshark
def test_colour_rules_compile_in_tshark(tmp_path: Path) -> None:
    """tshark --color compiles every rule and warns about any it cannot (checked both ways)."""
    import subprocess

    target = write_profile(render_profile(_spec()), tmp_path / "profiles", "pt-test")
    caps = [p for p in public_captures() if p.name == "http_proxy.pcap"]
    if not caps:
        pytest.skip("public capture http_proxy.pcap not present")

    def warnings() -> list[str]:
        done = subprocess.run(  # noqa: S603 - argument list
            ["tshark", "-n", "-C", "pt-test", "--color", "-r", str(caps[0]), "-c", "1"],
            env=tshark_env(tmp_path), capture_output=True, text=True, check=True)
        return [ln for ln in done.stderr.splitlines() if ln.strip() and "Running as user" not in ln]

    assert warnings() == []
    with (target / "colorfilters").open("a") as fh:
        fh.write("@broken@dns.qry.name ==@[0,0,0][65535,0,0]\n")
    assert any("broken" in ln for ln in warnings())
