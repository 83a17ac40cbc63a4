"""Compile BPF expressions with the system libpcap, so a generated filter is known to work before
anyone sees it.

``pcap_open_dead`` + ``pcap_compile`` need neither root nor an interface, and give the same
parser tcpdump uses; ctypes avoids a binding package for two calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

from ..base.errors import ProxytraceError
from ..base.exitcodes import MISSING_TOOL

# Link types we check every filter against: Ethernet (captures from a NIC or veth) and Linux
# "cooked" v2 (tcpdump -i any, the link type of a live capture on all interfaces).
DLT_EN10MB = 1
DLT_LINUX_SLL2 = 276
LINK_TYPES = {"EN10MB": DLT_EN10MB, "LINUX_SLL2": DLT_LINUX_SLL2}

_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_SNAPLEN = 262144


class LibpcapMissing(ProxytraceError):
    exit_code = MISSING_TOOL


class BpfCompileError(ProxytraceError):
    """libpcap rejected a filter we generated: a bug in the generator, never user output."""


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if not name:
        raise LibpcapMissing("libpcap is not installed (Debian: apt-get install libpcap0.8)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def compile_filter(expression: str, link_type: int) -> int:
    """Compile ``expression`` for ``link_type``; return the program length in instructions.

    Raises BpfCompileError with libpcap's message when it does not compile.
    """
    lib = _lib()
    handle = lib.pcap_open_dead(link_type, _SNAPLEN)
    if not handle:
        raise BpfCompileError(f"libpcap cannot open a dead handle for link type {link_type}")
    prog = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode("ascii"), 1,
                            _PCAP_NETMASK_UNKNOWN) != 0:
            err = lib.pcap_geterr(handle) or b"unknown error"
            raise BpfCompileError(f"libpcap rejected the filter: {err.decode(errors='replace')}")
        length = int(prog.bf_len)
        lib.pcap_freecode(ctypes.byref(prog))
        return length
    finally:
        lib.pcap_close(handle)


def check_filter(expression: str) -> dict[str, int]:
    """Compile for every link type in LINK_TYPES; return instruction counts per link type."""
    return {name: compile_filter(expression, dlt) for name, dlt in LINK_TYPES.items()}
