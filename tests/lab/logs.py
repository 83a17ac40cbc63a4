"""Parsers for the lab's ground-truth logs: dnsmasq's query log, tinyproxy's log, go -x output."""

from __future__ import annotations

import datetime
import re
from typing import Any

# dnsmasq --log-queries=extra: "<Mon dd HH:MM:SS> dnsmasq[pid]: <serial> <ip>/<port> query[A] name from ip"
_DNSMASQ_QUERY = re.compile(
    r"^(?P<stamp>\w{3} +\d+ \d\d:\d\d:\d\d) dnsmasq\[\d+\]: (?P<serial>\d+) "
    r"(?P<ip>[0-9a-fA-F.:]+)/(?P<port>\d+) query\[(?P<qtype>[A-Z0-9]+)\] (?P<name>\S+) from ")
_DNSMASQ_ANSWER = re.compile(
    r"^\w{3} +\d+ \d\d:\d\d:\d\d dnsmasq\[\d+\]: (?P<serial>\d+) [0-9a-fA-F.:]+/\d+ "
    r"(?:config|reply|cached) (?P<name>\S+) is (?P<answer>.+)$")


def _stamp(text: str) -> float:
    year = datetime.datetime.now(datetime.UTC).year
    parsed = datetime.datetime.strptime(f"{year} {text}", "%Y %b %d %H:%M:%S")
    return parsed.replace(tzinfo=datetime.UTC).timestamp()


def parse_dnsmasq_log(text: str) -> list[dict[str, Any]]:
    """One dict per query: ts (whole seconds, local log time read as UTC), name, qtype,
    client_ip, client_port, answers (what dnsmasq said)."""
    queries: list[dict[str, Any]] = []
    by_serial: dict[tuple[int, str], dict[str, Any]] = {}
    for line in text.splitlines():
        m = _DNSMASQ_QUERY.match(line)
        if m:
            q: dict[str, Any] = {"ts": _stamp(m.group("stamp")), "name": m.group("name").lower(),
                 "qtype": m.group("qtype"), "client_ip": m.group("ip"),
                 "client_port": int(m.group("port")), "answers": []}
            queries.append(q)
            by_serial[(int(m.group("serial")), q["name"])] = q
            continue
        a = _DNSMASQ_ANSWER.match(line)
        if a:
            target = by_serial.get((int(a.group("serial")), a.group("name").lower()))
            if target is not None:
                target["answers"].append(a.group("answer"))
    return queries


# tinyproxy: "CONNECT   Nov 26 02:10:00.123 [1234]: Request (file descriptor 7): CONNECT host:443 HTTP/1.1"
_TINYPROXY_REQUEST = re.compile(r"Request \(file descriptor \d+\): (?P<method>[A-Z]+) (?P<target>\S+) HTTP/")


def parse_tinyproxy_log(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        m = _TINYPROXY_REQUEST.search(line)
        if m:
            target = m.group("target")
            host = target.rsplit(":", 1)[0] if m.group("method") == "CONNECT" else target
            out.append({"method": m.group("method"), "target": target, "host": host.lower()})
    return out


# go -x: "# get https://host/path" then "# get https://host/path: 200 OK (0.002s)" or an error.
_GO_GET = re.compile(r"^# get (?P<url>\S+?)(?:: (?P<result>.*))?$")


def parse_go_x(stderr: str) -> list[dict[str, Any]]:
    """The fetches the go command reports with -x (completed ones, with their status line)."""
    out = []
    for line in stderr.splitlines():
        m = _GO_GET.match(line.strip())
        if m and m.group("result") is not None:
            out.append({"url": m.group("url"), "result": m.group("result")})
    return out


# danted (log: connect disconnect error): one line when a session is established ("[:"), one when
# it ends or fails ("]:"); the first endpoint is the SOCKS client, dotted as ADDRESS.PORT.
#   info: pass(1): tcp/connect [: 10.77.5.2.54694 10.77.5.1.1080 -> 10.77.5.1.54694 10.77.5.1.443
#   info: block(1): tcp/accept ]: 10.77.5.2.54706 10.77.5.1.1080: request was not performed ...
_DANTE = re.compile(r"\((?P<ts>\d+\.\d+)\) danted\[\d+\]: info: (?P<verdict>pass|block)\(\d+\): "
                    r"tcp/(?P<what>connect|accept) (?P<mark>[\[\]]): ")
_DANTE_ENDPOINT = re.compile(r"\b(\d+\.\d+\.\d+\.\d+)\.(\d+)\b")


def parse_dante_log(lines: list[str]) -> list[dict[str, Any]]:
    """One dict per SOCKS client connection dante saw: client_ip, client_port, ts,
    ``established`` (a tunnel was opened), ``dest`` (``ADDRESS.PORT`` dante connected to, as it
    logs it; dante does not log the name a SOCKS5 request gave) and ``outbound`` (dante's own
    address and port on that connection: what the lab server logs as its client)."""
    by_client: dict[tuple[str, int], dict[str, Any]] = {}
    for line in lines:
        m = _DANTE.search(line)
        if m is None:
            continue
        # client, proxy (listening), proxy (outgoing), destination
        ends = _DANTE_ENDPOINT.findall(line[m.end():])
        if not ends:
            continue
        key = (ends[0][0], int(ends[0][1]))
        entry = by_client.setdefault(key, {"server": "dante", "client_ip": key[0],
                                           "client_port": key[1], "ts": float(m.group("ts")),
                                           "established": False, "dest": None, "host": None,
                                           "outbound": None})
        if m.group("what") == "connect" and m.group("mark") == "[":
            entry["established"] = True
        if m.group("what") == "connect" and len(ends) >= 4 and entry["dest"] is None:
            entry["dest"] = ".".join(ends[3])
            entry["outbound"] = [ends[2][0], int(ends[2][1])]
    return sorted(by_client.values(), key=lambda e: e["ts"])


# ssh -D -vv, when a forwarded channel ends:
#   debug1: channel 1: free: direct-tcpip: listening port 1081 for proxy.golang.org port 443,
#   connect from 10.77.5.2 port 39644 to 10.77.5.1 port 1081, nchannels 2
_SSH_SOCKS = re.compile(r"free: direct-tcpip: listening port \d+ for (?P<host>\S+) port "
                        r"(?P<dport>\d+), connect from (?P<ip>\S+) port (?P<port>\d+)")


def parse_ssh_socks_log(lines: list[str]) -> list[dict[str, Any]]:
    """One dict per SOCKS request ``ssh -D`` forwarded: the destination name (or address) the
    request gave, its port, and the SOCKS client. OpenSSH answers "granted" before it connects,
    so every request it logs had its tunnel opened."""
    out = []
    for line in lines:
        m = _SSH_SOCKS.search(line)
        if m:
            out.append({"server": "ssh", "client_ip": m.group("ip"),
                        "client_port": int(m.group("port")), "ts": None, "established": True,
                        "dest": f"{m.group('host')}.{m.group('dport')}",
                        "host": m.group("host").lower()})
    return out
