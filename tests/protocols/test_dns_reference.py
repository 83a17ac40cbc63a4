"""The struct-based DNS walk gives exactly what the dpkt-based one gave, on real and hostile bytes."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.base.errors import ParseError
from analyzer.events.builtin.engine import DNS_PORTS
from analyzer.packets.decode import Decoder
from analyzer.protocols.dns import DnsMessage, parse_dns
from analyzer.source.capture_file import ReadState, open_capture

from .dns_dpkt_reference import parse_dns_dpkt
from .test_dns_fuzz import REAL, mutated

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = sorted(p for p in [*(ROOT / "tests" / "data" / "dns").iterdir(),
                              *(ROOT / "captures").iterdir(),
                              *(ROOT.parent / "shared" / "captures").rglob("*")]
                  if p.suffix in (".pcap", ".pcapng"))
FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _both(data: bytes) -> tuple[DnsMessage | str, DnsMessage | str]:
    out: list[DnsMessage | str] = []
    for parse in (parse_dns, parse_dns_dpkt):
        try:
            out.append(parse(data))
        except ParseError:
            out.append("ParseError")
    return out[0], out[1]


def _dns_payloads(path: Path) -> list[bytes]:
    """UDP payloads to or from a DNS port, through the project's reader and decoder."""
    decoder = Decoder()
    found = []
    with path.open("rb") as fh:
        for frame in open_capture(fh, ReadState(path.name)):
            seg = decoder.decode(frame.number, frame.ts, frame.linktype, frame.data)
            if (seg is not None and seg.transport == "udp" and seg.payload
                    and {seg.sport, seg.dport} & DNS_PORTS):
                found.append(seg.payload)
    return found


def test_same_messages_on_every_capture() -> None:
    compared = 0
    with_dns = set()
    for path in CAPTURES:
        for data in _dns_payloads(path):
            ours, reference = _both(data)
            assert ours == reference, path.name
            compared += 1
            with_dns.add(path.name)
    # the lab's captures, Zeek's DNS edge cases and ptcpdump's sample all carry DNS
    assert compared > 200 and len(with_dns) > 20, (compared, sorted(with_dns))


def test_the_captures_hold_parsed_answers() -> None:
    parsed = [m for m in (parse_dns(d) for d in REAL) if m.answers]
    assert len(parsed) > 10


@FUZZ
@given(mutated())
def test_same_result_on_mutated_messages(data: bytes) -> None:
    ours, reference = _both(data)
    assert ours == reference


@FUZZ
@given(st.binary(max_size=400))
def test_same_result_on_random_bytes(data: bytes) -> None:
    ours, reference = _both(data)
    assert ours == reference


@FUZZ
@given(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x0DB8, 0xFE80]) | st.integers(0, 0xFFFF),
                min_size=8, max_size=8))
def test_address_text_is_ipaddress_text(groups: list[int]) -> None:
    import ipaddress

    from analyzer.protocols.dns import _address_text

    packed = b"".join(g.to_bytes(2, "big") for g in groups)
    assert _address_text(packed) == str(ipaddress.ip_address(packed))
    assert _address_text(packed[:4]) == str(ipaddress.ip_address(packed[:4]))


@FUZZ
@given(st.lists(st.binary(min_size=1, max_size=12) | st.sampled_from([b"proxy", b"golang", b"org"]),
                max_size=6))
def test_name_text_is_each_label_escaped(labels: list[bytes]) -> None:
    from analyzer.protocols.dns import _label_text, read_name

    wire = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    if len(wire) > 256:
        return
    name, end = read_name(wire, 0)
    assert end == len(wire)
    assert name == ".".join(_label_text(label) for label in labels).lower()
