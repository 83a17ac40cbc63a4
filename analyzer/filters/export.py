"""The repository's ``filters/`` directory: the default profile, its zip and the BPF file.

Generated from the defaults only (DEFAULT_HOSTS, the default GOPROXY, ports 80 and 443): no
``go env``, no DNS, no key log, no timestamps, so the committed files can be compared with a
fresh generation byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from ..base.files import make_private_dir, write_private
from ..base.watchlist import DEFAULT_HOSTS, WatchList
from .bpf import capture_filter
from .display import standard_filters
from .inputs import DEFAULT_GOPROXY, DEFAULT_PORTS, parse_goproxy, proxy_hostnames, proxy_ports
from .profile import DEFAULT_PROFILE, ProfileSpec, render_profile, write_profile, write_zip

BPF_FILE = "capture.bpf"


def default_spec() -> ProfileSpec:
    proxies = parse_goproxy(DEFAULT_GOPROXY)
    watch = WatchList.build([*DEFAULT_HOSTS, *proxy_hostnames(proxies)])
    bpf = capture_filter(watch, ports=sorted({*DEFAULT_PORTS, *proxy_ports(proxies)}),
                         plaintext_ports=(80,))
    return ProfileSpec(DEFAULT_PROFILE, tuple(standard_filters(watch)), bpf)


def export(out_dir: Path, spec: ProfileSpec | None = None) -> list[Path]:
    """Write the profile directory, ``<name>.zip`` and ``capture.bpf``; return the paths."""
    spec = spec or default_spec()
    make_private_dir(out_dir)
    files = render_profile(spec)
    written = [write_profile(files, out_dir, spec.name)]
    written.append(write_zip(files, out_dir / f"{spec.name}.zip", spec.name))
    assert spec.capture_filter is not None
    written.append(write_private(out_dir / BPF_FILE, spec.capture_filter + "\n"))
    return written
