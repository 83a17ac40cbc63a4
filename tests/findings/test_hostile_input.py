"""Findings never fail on what a hostile peer can put in a capture (names, Location headers)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.base.watchlist import WatchList
from analyzer.events.records import Evidence
from analyzer.findings import apply_findings
from analyzer.findings.expect import load_expectations

from .helpers import http_contact, http_exchange

EXPECT = load_expectations()
WATCH = WatchList.build()

locations = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=80),
    st.builds(lambda h, p: f"http://{h}{p}", st.sampled_from(
        ["[::1", "a:99999", "x@y@z", "%00", "::", "evil.example:-1", "[::1]:80"]),
        st.text(alphabet="/?#%@:[]", max_size=10)),
)


@settings(max_examples=200, deadline=None)
@given(location=locations, status=st.sampled_from([301, 302, 303, 307, 308]))
def test_any_location_header(location: str, status: int) -> None:
    response = (f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n"
                "Content-Length: 0\r\n\r\n").encode()
    ex = http_exchange(b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n", response)
    out = apply_findings([http_contact(ex)], Evidence(http=[ex]), EXPECT, WATCH)
    assert len(out) == 1
    assert "http-plaintext" in [f.kind for f in out[0].findings]
