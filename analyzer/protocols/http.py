"""HTTP/1.x message heads from one direction of a TCP stream, as an incremental state machine.

Hand-written rather than h11 because a capture analyser needs what h11 (an endpoint library)
does not give: starting in the middle of a connection (a capture without the SYN), parsing each
direction on its own with the request methods supplied from outside, skipping multi-megabyte
bodies without producing events for them, tolerating what real clients send (bare LF line ends,
obs-fold), and following a CONNECT into its tunnel. Only heads are kept; bodies are counted off.
Only ParseError leaves this module.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from ..base.errors import ParseError

METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"CONNECT", b"OPTIONS", b"DELETE", b"PATCH")
# RFC 9110 section 9 and RFC 5789: methods any other is unusual (a token all the same: WebDAV's
# PROPFIND, SSDP's M-SEARCH...)
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                              "TRACE", "PATCH"})
TUNNEL_KEEP = 16 * 1024
UNUSUAL = "http-unusual-request-line"
_BLANKS = "several spaces or tabs between its parts"
_HTTP09 = "HTTP/0.9"

_KNOWN_STARTS = tuple(m + b" " for m in METHODS)
# RFC 9112 section 3: request-line = method SP request-target SP HTTP-version
_REQUEST_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([^\s]+) +HTTP/(\d)\.(\d) *$")
# What real clients also send, read as Zeek's HTTP analyzer does (HTTP.cc, HTTP_RequestLine and
# ParseRequest): any token as method; spaces or tabs between the parts; no target; a target
# that is not a path; no version at all (HTTP/0.9); "http/" in lower case.
# (Split with bytes methods rather than one regex: a regex over runs of blanks backtracks.)
_METHOD_AND_BLANKS = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]+")
_VERSION = re.compile(rb"(HTTP)/(\d)\.(\d)", re.I)
# The first line of a request with any method, recognised only with its HTTP version: without
# one, SSH banners and SMTP greetings would pass for HTTP/0.9 requests (only GET is taken so).
_ANY_REQUEST_START = re.compile(
    rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}[ \t]+(?:[^ \t\r\n]+[ \t]+)*?HTTP/\d\.\d[ \t]*\r?\n", re.I)
# host[:port] or [v6]:port, the authority-form of RFC 9112 section 3.2.3
_AUTHORITY = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?$")
# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
_STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) +(\d{3})(?: (.*))?$")
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_START = re.compile(rb"(?:^|\n)(?:(?:" + b"|".join(METHODS) + rb") [^\s]+ HTTP/1\.\d|HTTP/1\.\d \d{3})")
_CHUNK_LINE_MAX = 1024

Headers = tuple[tuple[str, str], ...]


def _find(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _url_parts(url: str) -> tuple[str, str]:
    """(authority, path?query) of an absolute URL, split by hand: urlsplit raises ValueError on
    hostile authorities such as "http://[::1/" and a property must not raise."""
    rest = url.split("://", 1)[1].split("#", 1)[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    path = rest[cut:] or "/"
    return rest[:cut], (path if path.startswith("/") else "/" + path)


def _strip_port(authority: str) -> str:
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request head."""

    method: str
    target: str
    version: str
    headers: Headers
    offset: int
    # what the request line's own bytes showed that the fields cannot: "several spaces or tabs"
    line_notes: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        return _find(self.headers, name)

    @property
    def authority_form(self) -> bool:
        """A ``host:port`` target: CONNECT's form (RFC 9112 3.2.3), unusual with other methods."""
        return bool(self.target) and self.target[0] not in "/*" and "://" not in self.target \
            and _AUTHORITY.match(self.target) is not None

    @property
    def host(self) -> str | None:
        """The origin host: the target's host for absolute-form and CONNECT, else the Host header.

        An absolute-form target's host wins over the Host header, as RFC 9112 section 3.2.2
        tells a server to do (a proxy fetches that URL); Zeek's http.log shows the Host header
        instead. An authority-form target with another method than CONNECT names the host only
        when there is no Host header."""
        if self.method == "CONNECT":
            return _strip_port(self.target) or None
        if "://" in self.target:
            netloc = _url_parts(self.target)[0]
            if netloc:
                return _strip_port(netloc) or None
        value = self.header("host")
        if not value and self.authority_form:
            return _strip_port(self.target) or None
        return _strip_port(value.strip()) or None if value else None

    @property
    def unusual(self) -> tuple[str, ...]:
        """Notes on a request line that is odd but real (each ``http-unusual-request-line: ...``);
        () for an ordinary one. The request is kept either way."""
        notes = list(self.line_notes)
        method, target = self.method, self.target
        if method not in STANDARD_METHODS:
            notes.append(f"method {method!r} is not upper case" if method.upper() in
                         STANDARD_METHODS else f"method {method!r} is not an RFC 9110 method")
        if self.version == _HTTP09:
            notes.append("no HTTP version (an HTTP/0.9 request)")
        if not target:
            notes.append("no request target")
        elif target == "*":
            notes.append("asterisk-form target '*'")
        elif method != "CONNECT" and self.authority_form:
            notes.append(f"authority-form target {target!r} with method {method}")
        elif "://" in target:
            named = _strip_port(_url_parts(target)[0])
            given = self.header("host")
            if given is None:
                notes.append(f"absolute-form target for {named} without a Host header")
            elif _strip_port(given.strip()) != named:
                notes.append(f"absolute-form target for {named} but Host header {given.strip()!r}; "
                             f"the target's host is used")
        return tuple(f"{UNUSUAL}: {n}" for n in notes)

    @property
    def path(self) -> str:
        """Path and query. Absolute-form gives its path part; CONNECT and ``*`` give the target."""
        if self.target.startswith("/"):
            return self.target
        if "://" in self.target:
            _netloc, path = _url_parts(self.target)
            return path
        return self.target

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent")

    @property
    def absolute_form(self) -> bool:
        """True when the request was written for a forward proxy (``GET http://host/path``)."""
        return "://" in self.target


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response head."""

    version: str
    status: int
    reason: str
    headers: Headers
    offset: int

    def header(self, name: str) -> str | None:
        return _find(self.headers, name)

    @property
    def location(self) -> str | None:
        return self.header("location")


def looks_like_http_request(data: bytes) -> bool:
    """A common method and a space, or a whole first line with any method and an HTTP version."""
    return data.startswith(_KNOWN_STARTS) or _ANY_REQUEST_START.match(data) is not None


def looks_like_http_response(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.")


# Parser states
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _UNTIL_CLOSE, _TUNNEL, \
    _MAYBE_TUNNEL, _FAILED = range(10)


class HttpStreamParser:
    """Incremental parser for one direction of one TCP connection."""

    def __init__(self, is_client: bool, max_header_bytes: int = 65536, *,
                 midstream: bool = False) -> None:
        """``midstream``: the capture may have started inside this stream, so bytes before the
        first plausible start line are skipped instead of being an error."""
        self.is_client = is_client
        self.max_header_bytes = max_header_bytes
        self._state = _HEAD
        self._buf = bytearray()
        self._scan_from = 0          # where to resume looking for the end of the head
        self._offset = 0             # stream offset of _buf[0]
        self._remaining = 0          # body bytes (or chunk bytes) still to skip
        self._methods: deque[str] = deque()
        self._tunnel = False
        self._tunnel_bytes = bytearray()
        self._seeking = midstream

    # -- public state
    @property
    def tunnel(self) -> bool:
        return self._tunnel

    @property
    def tunnel_bytes(self) -> bytes:
        return bytes(self._tunnel_bytes)

    @property
    def failed(self) -> bool:
        return self._state == _FAILED

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for more (an unfinished head; never a body)."""
        return len(self._buf)

    def note_request_method(self, method: str, *, http09: bool = False) -> None:
        """The method of the next request this (server-side) parser will see answered; an
        HTTP/0.9 request is answered by the body alone, with no status line."""
        self._methods.append(_HTTP09 if http09 else method.upper())

    # -- feeding
    def feed(self, data: bytes) -> list[HttpRequest | HttpResponse]:
        if self._state == _FAILED or not data:
            return []
        out: list[HttpRequest | HttpResponse] = []
        self._buf += data
        try:
            while self._buf and self._step(out):
                pass
        except ParseError:
            self._state = _FAILED
            self._buf.clear()
            raise
        return out

    def _consume(self, count: int) -> None:
        del self._buf[:count]
        self._offset += count
        self._scan_from = 0

    def _step(self, out: list[HttpRequest | HttpResponse]) -> bool:
        """Advance by one unit of work; False when more bytes are needed."""
        state = self._state
        if state == _HEAD:
            return self._step_head(out)
        if state in (_LENGTH, _CHUNK_DATA):
            take = min(self._remaining, len(self._buf))
            self._consume(take)
            self._remaining -= take
            if self._remaining == 0:
                self._state = _CHUNK_END if state == _CHUNK_DATA else _HEAD
            return True
        if state == _CHUNK_SIZE:
            return self._step_chunk_size()
        if state == _CHUNK_END:
            return self._step_line_end(_CHUNK_SIZE)
        if state == _TRAILER:
            return self._step_trailer()
        if state == _UNTIL_CLOSE:
            self._consume(len(self._buf))
            return False
        if state == _MAYBE_TUNNEL:
            # A CONNECT refused with 407 is retried on the same connection, so the bytes after a
            # CONNECT are a new request if they start with a letter; TLS starts with 0x16.
            if 0x41 <= self._buf[0] <= 0x5A:
                self._tunnel = False
                self._state = _HEAD
            else:
                self._state = _TUNNEL
            return True
        if state == _TUNNEL:
            room = TUNNEL_KEEP - len(self._tunnel_bytes)
            if room > 0:
                self._tunnel_bytes += self._buf[:room]
            self._consume(len(self._buf))
            return False
        return False

    # -- heads
    def _step_head(self, out: list[HttpRequest | HttpResponse]) -> bool:
        if self._seeking and not self._resync():
            return False
        # RFC 9112 section 2.2: ignore empty lines before a start line.
        while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":
            self._consume(2 if self._buf[:1] == b"\r" else 1)
        if not self._buf or self._buf == b"\r":      # nothing yet, or half of an empty line
            return False
        if not self.is_client and self._methods and self._methods[0] == _HTTP09 \
                and self._buf[:1] != b"H":
            self._methods.popleft()       # an HTTP/0.9 answer: the body, up to the close
            self._state = _UNTIL_CLOSE
            return True
        self._check_start()
        end = self._head_end()
        if end < 0 and self.is_client:
            end = self._http09_end()
        if end < 0 and len(self._buf) <= self.max_header_bytes:
            return False
        if end < 0 or end > self.max_header_bytes:
            raise ParseError(f"HTTP header block longer than {self.max_header_bytes} bytes")
        head = bytes(self._buf[:end])
        offset = self._offset
        self._consume(end)
        message = self._parse_head(head, offset)
        out.append(message)
        self._after_head(message)
        return True

    def _resync(self) -> bool:
        """Skip to the first plausible start line (captures that begin inside a body)."""
        if looks_like_http_request(bytes(self._buf[:8])) or \
                looks_like_http_response(bytes(self._buf[:7])):
            self._seeking = False
            return True
        match = _START.search(self._buf)
        if match is None:
            # Keep a tail that may hold the start of a start line split across feeds.
            keep = 64
            if len(self._buf) > keep:
                self._consume(len(self._buf) - keep)
            return False
        start = match.start() + (1 if self._buf[match.start():match.start() + 1] == b"\n" else 0)
        self._consume(start)
        self._seeking = False
        return True

    def _http09_end(self) -> int:
        """Where an unfinished head ends if it is an HTTP/0.9 request, which is its request line
        alone (no version, no headers, no empty line after), else -1."""
        line_end = self._buf.find(b"\n", 0, self.max_header_bytes)
        if line_end < 0:
            return -1
        last = bytes(self._buf[:line_end]).rsplit(None, 1)[-1:]
        if last and _VERSION.fullmatch(last[0]):
            return -1
        return line_end + 1

    def _check_start(self) -> None:
        """Fail early on a stream that is not HTTP/1.x in this direction (TLS sent to port 80...)."""
        first = bytes(self._buf[:24])
        if self.is_client:
            token = first.replace(b"\t", b" ").split(b" ", 1)[0]
            ok = bool(_TOKEN.match(token)) and len(token) <= 20 and \
                (b" " in first or b"\t" in first or len(first) <= 20)
        else:
            ok = first[:7] == b"HTTP/1."[:len(first[:7])]
        if not ok:
            kind = "request" if self.is_client else "response"
            raise ParseError(f"not an HTTP/1.x {kind}: starts with {first[:16]!r}")

    def _head_end(self) -> int:
        """Index just past the empty line that ends the head (CRLF or bare LF), or -1.

        Walks line ends once; ``_scan_from`` makes repeated calls on a growing head linear."""
        buf = self._buf
        pos = buf.find(b"\n", max(0, self._scan_from - 2))
        while pos >= 0:
            after = buf[pos + 1:pos + 3]
            if after[:1] == b"\n":
                return pos + 2
            if after == b"\r\n":
                return pos + 3
            pos = buf.find(b"\n", pos + 1)
        self._scan_from = len(buf)
        return -1

    def _parse_head(self, head: bytes, offset: int) -> HttpRequest | HttpResponse:
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        start = lines[0].rstrip(b"\r")
        headers = _parse_headers(lines[1:])
        if self.is_client:
            match = _REQUEST_LINE.match(start)
            if match is None:
                return _loose_request(start, headers, offset)
            method, target, major, minor = match.groups()
            return HttpRequest(method.decode("ascii"), target.decode("latin-1"),
                               f"HTTP/{major.decode()}.{minor.decode()}", headers, offset,
                               (_BLANKS,) if b"  " in start else ())
        match = _STATUS_LINE.match(start)
        if match is None:
            raise ParseError(f"malformed HTTP status line {start[:80]!r}")
        major, minor, status, reason = match.groups()
        return HttpResponse(f"HTTP/{major.decode()}.{minor.decode()}", int(status),
                            (reason or b"").decode("latin-1").strip(), headers, offset)

    # -- bodies
    def _after_head(self, message: HttpRequest | HttpResponse) -> None:
        if isinstance(message, HttpRequest):
            if message.method == "CONNECT":
                self._tunnel = True
                self._state = _MAYBE_TUNNEL
                return
            self._start_body(message.headers, default_until_close=False)
            return
        status = message.status
        if 100 <= status < 200:
            if status == 101:        # Upgrade (websocket, h2c): the rest is not HTTP/1.x
                self._tunnel = True
                self._state = _TUNNEL
            return                   # an interim answer; the final one follows
        method = self._methods.popleft() if self._methods else "GET"
        if method == "CONNECT" and 200 <= status < 300:
            self._tunnel = True
            self._state = _TUNNEL
            return
        if method == "HEAD" or status in (204, 304):
            self._state = _HEAD
            return
        self._start_body(message.headers, default_until_close=True)

    def _start_body(self, headers: Headers, *, default_until_close: bool) -> None:
        encoding = _find(headers, "transfer-encoding")
        if encoding is not None and encoding.lower().rsplit(",", 1)[-1].strip() == "chunked":
            self._state = _CHUNK_SIZE
            return
        length = _content_length(headers)
        if length is not None:
            self._remaining = length
            self._state = _LENGTH if length else _HEAD
            return
        self._state = _UNTIL_CLOSE if default_until_close or encoding else _HEAD

    def _step_chunk_size(self) -> bool:
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > _CHUNK_LINE_MAX:
                raise ParseError("HTTP chunk-size line too long")
            return False
        line = bytes(self._buf[:end]).rstrip(b"\r").split(b";", 1)[0].strip()
        if not line or len(line) > 16 or not all(c in b"0123456789abcdefABCDEF" for c in line):
            raise ParseError(f"bad HTTP chunk size {line[:20]!r}")
        size = int(line, 16)
        self._consume(end + 1)
        if size == 0:
            self._state = _TRAILER
        else:
            self._remaining = size
            self._state = _CHUNK_DATA
        return True

    def _step_line_end(self, next_state: int) -> bool:
        if self._buf[:1] == b"\n":
            self._consume(1)
        elif self._buf[:2] == b"\r\n":
            self._consume(2)
        elif len(self._buf) < 2 and self._buf[:1] == b"\r":
            return False
        else:
            raise ParseError("HTTP chunk not followed by CRLF")
        self._state = next_state
        return True

    def _step_trailer(self) -> bool:
        # Trailer fields end with an empty line; they are skipped.
        end = self._buf.find(b"\n")
        if end < 0:
            if len(self._buf) > self.max_header_bytes:
                raise ParseError("HTTP trailer too long")
            return False
        line = bytes(self._buf[:end]).rstrip(b"\r")
        self._consume(end + 1)
        if not line:
            self._state = _HEAD
        return True


def _loose_request(line: bytes, headers: Headers, offset: int) -> HttpRequest:
    """A request line the strict form refuses, kept the way Zeek keeps it (see the comment
    above _METHOD_AND_BLANKS), or ParseError for one Zeek refuses too."""
    match = _METHOD_AND_BLANKS.match(line)
    if match is None:
        raise ParseError(f"malformed HTTP request line {line[:80]!r}")
    method = match.group(1)
    rest = line[match.end():].rstrip(b" \t")
    notes = []
    parts = rest.rsplit(None, 1)
    version = _VERSION.fullmatch(parts[-1]) if parts else None
    if version is not None:
        target = parts[0].rstrip(b" \t") if len(parts) == 2 else b""
        keyword, major, minor = version.groups()
        text = f"HTTP/{major.decode()}.{minor.decode()}"
        if keyword != b"HTTP":
            notes.append("lower-case HTTP version")
    else:
        # HTTP/0.9: no version; Zeek wants a target and a method of three letters or more
        target, text = rest, _HTTP09
        if not target or len(method) < 3:
            raise ParseError(f"malformed HTTP request line {line[:80]!r}")
    if b"\t" in line or b"  " in line:
        notes.append(_BLANKS)
    if b" " in target or b"\t" in target:
        notes.append("spaces inside the request target")
    return HttpRequest(method.decode("ascii"), target.decode("latin-1"), text, headers, offset,
                       tuple(notes))


def _parse_headers(lines: list[bytes]) -> Headers:
    headers: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.rstrip(b"\r")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if not headers:
                raise ParseError("HTTP header continuation before any header")
            last_name, last_value = headers[-1]
            headers[-1] = (last_name, f"{last_value} {line.strip().decode('latin-1')}")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise ParseError(f"malformed HTTP header line {line[:80]!r}")
        headers.append((name.decode("ascii"), value.strip().decode("latin-1")))
    return tuple(headers)


def _content_length(headers: Headers) -> int | None:
    values = {v.strip() for k, v in headers if k.lower() == "content-length"}
    values = {part.strip() for v in values for part in v.split(",")}
    if not values:
        return None
    if len(values) > 1:
        raise ParseError(f"conflicting Content-Length values {sorted(values)}")
    value = values.pop()
    if not value.isdigit() or len(value) > 18:
        raise ParseError(f"bad Content-Length {value[:20]!r}")
    return int(value)
