"""Test helpers: apply a BPF filter to a capture file the way tcpdump does, keeping pcapng.

tcpdump -w writes classic pcap (microsecond timestamps, no packet comments), which would lose
the process information proxytrace reads from pcapng comments. Here libpcap itself (the engine
tcpdump uses) decides which frames pass, and editcap keeps exactly those frames of the original
file, so the filtered file is what a live capture with the same filter would have recorded.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

from analyzer.filters import libpcap


class _PktHdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long),
                ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


def matching_frames(path: Path, expression: str) -> list[int]:
    """1-based numbers of the frames of ``path`` that ``expression`` accepts."""
    lib = libpcap._lib()
    lib.pcap_open_offline.restype = ctypes.c_void_p
    lib.pcap_open_offline.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.pcap_next_ex.restype = ctypes.c_int
    lib.pcap_next_ex.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(_PktHdr)),
                                 ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]
    lib.pcap_offline_filter.restype = ctypes.c_int
    lib.pcap_offline_filter.argtypes = [ctypes.POINTER(libpcap._BpfProgram),
                                        ctypes.POINTER(_PktHdr),
                                        ctypes.POINTER(ctypes.c_ubyte)]
    errbuf = ctypes.create_string_buffer(512)
    handle = lib.pcap_open_offline(str(path).encode(), errbuf)
    if not handle:
        raise RuntimeError(f"{path}: {errbuf.value.decode()}")
    prog = libpcap._BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) != 0:
            raise RuntimeError(lib.pcap_geterr(handle).decode())
        hdr = ctypes.POINTER(_PktHdr)()
        data = ctypes.POINTER(ctypes.c_ubyte)()
        kept, number = [], 0
        while lib.pcap_next_ex(handle, ctypes.byref(hdr), ctypes.byref(data)) == 1:
            number += 1
            if lib.pcap_offline_filter(ctypes.byref(prog), hdr, data):
                kept.append(number)
        lib.pcap_freecode(ctypes.byref(prog))
        return kept
    finally:
        lib.pcap_close(handle)


def keep_frames(src: Path, frames: list[int], dst: Path) -> Path:
    """Write the given frames of ``src`` to ``dst`` with editcap, keeping the file format."""
    editcap = shutil.which("editcap")
    if editcap is None:
        raise RuntimeError("editcap missing")
    # editcap -r keeps the listed packets; chunk the list to stay under argv limits.
    args = [editcap, "-r", str(src), str(dst)] + _ranges(frames) if frames else \
        [editcap, "-r", str(src), str(dst), "0"]
    subprocess.run(args, check=True, capture_output=True)  # noqa: S603 - argument list
    return dst


def _ranges(frames: list[int]) -> list[str]:
    out: list[str] = []
    start = prev = None
    for n in frames:
        if start is None:
            start = prev = n
        elif prev is not None and n == prev + 1:
            prev = n
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return out


def tcpdump_count(path: Path, expression: str, tmp: Path) -> int | None:
    """How many packets tcpdump -r keeps with ``expression`` (None when tcpdump is missing)."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        return None
    out = tmp / "tcpdump-out.pcap"
    subprocess.run([tcpdump, "-r", str(path), "-w", str(out), expression],  # noqa: S603
                   check=True, capture_output=True)
    return len(matching_frames(out, "")) if out.stat().st_size > 24 else 0
