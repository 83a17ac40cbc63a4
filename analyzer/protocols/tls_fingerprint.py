"""JA3 and JA4 client fingerprints, computed from ClientHello fields already parsed.

JA3 follows Salesforce's definition (github.com/salesforce/ja3): the decimal string
``SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`` with GREASE values
removed, and its md5. JA4 follows FoxIO's technical details (FoxIO-LLC/ja4,
``technical_details/JA4.md``) for TLS over TCP; its reference output for the captures in
``/work/shared/captures/ja4`` is checked by the tests.
"""

from __future__ import annotations

import hashlib
import struct

# RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa. Clients sprinkle these anywhere a list of u16 codes appears.
_GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))

_EXT_SERVER_NAME = 0x0000
_EXT_ALPN = 0x0010

# JA4's two-character version labels (FoxIO JA4.md, "TLS and DTLS Version").
_JA4_VERSION = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}

_EMPTY_HASH = "000000000000"


def is_grease(v: int) -> bool:
    """True for the RFC 8701 GREASE code points (ciphers, extensions, groups, versions...)."""
    return v in _GREASE


def _no_grease(values: tuple[int, ...]) -> list[int]:
    return [v for v in values if v not in _GREASE]


def ja3_string(legacy_version: int, ciphers: tuple[int, ...], extensions: tuple[int, ...],
               groups: tuple[int, ...], ec_point_formats: tuple[int, ...]) -> str:
    fields = (
        [legacy_version],
        _no_grease(ciphers),
        _no_grease(extensions),
        _no_grease(groups),
        list(ec_point_formats),
    )
    return ",".join(["-".join(map(str, field)) for field in fields])


def ja3_hash(text: str) -> str:
    # md5 is what JA3 is defined as; it is an identifier here, not a security control.
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


def _hex_list(values: list[int]) -> str:
    """u16 values as comma-separated 4-digit lower-case hex ("1301,1302"), formatted in one
    bytes.hex call rather than one f-string per value (a ClientHello has dozens)."""
    return struct.pack(f">{len(values)}H", *values).hex(",", 2)


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _alnum(b: int) -> bool:
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def ja4_alpn(first_alpn: bytes | None) -> str:
    """First and last character of the first ALPN value, FoxIO's hex rule for non-alphanumerics."""
    if not first_alpn:
        return "00"
    if _alnum(first_alpn[0]) and _alnum(first_alpn[-1]):
        return chr(first_alpn[0]) + chr(first_alpn[-1])
    hexed = first_alpn.hex()
    return hexed[0] + hexed[-1]


def ja4_version(legacy_version: int, versions: tuple[int, ...]) -> int:
    """The version JA4 (and ClientHello.max_version) uses: supported_versions max, else legacy."""
    offered = _no_grease(versions)
    return max(offered) if offered else legacy_version


def ja4_parts(*, legacy_version: int, versions: tuple[int, ...], ciphers: tuple[int, ...],
              extensions: tuple[int, ...], sig_algs: tuple[int, ...],
              first_alpn: bytes | None) -> tuple[str, str]:
    """Return (ja4, ja4_r) for a TLS-over-TCP ClientHello.

    ``extensions`` are the types in wire order; SNI presence (``d``/``i``) is read from them, as
    FoxIO does, rather than from a parsed host name.
    """
    version = _JA4_VERSION.get(ja4_version(legacy_version, versions), "00")
    sni = "d" if _EXT_SERVER_NAME in extensions else "i"
    cipher_list = _no_grease(ciphers)
    ext_list = _no_grease(extensions)
    head = (f"t{version}{sni}{min(len(cipher_list), 99):02d}{min(len(ext_list), 99):02d}"
            f"{ja4_alpn(first_alpn)}")

    cipher_text = _hex_list(sorted(cipher_list))
    hashed_exts = sorted(e for e in ext_list if e not in (_EXT_SERVER_NAME, _EXT_ALPN))
    ext_text = _hex_list(hashed_exts)
    # FoxIO: "ignore GREASE values anywhere"; clients that GREASE signature_algorithms exist.
    sig_text = _hex_list(_no_grease(sig_algs))
    ext_sig_text = f"{ext_text}_{sig_text}" if sig_text else ext_text

    ja4_b = _hash12(cipher_text) if cipher_list else _EMPTY_HASH
    ja4_c = _hash12(ext_sig_text) if hashed_exts else _EMPTY_HASH
    return f"{head}_{ja4_b}_{ja4_c}", f"{head}_{cipher_text}_{ext_sig_text}"
