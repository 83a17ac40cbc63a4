"""Expected contacts, derived from the lab's logs (never typed by hand).

- one ``dns`` contact per query the client namespace sent for a watched name (dnsmasq's log;
  A and AAAA separately);
- one ``tls`` contact per TLS handshake with a watched SNI (the lab server's log; failed
  handshakes count, their ClientHello was on the wire), including those tunnelled through the
  forward proxy;
- one ``http`` contact per plaintext request to a watched host (the lab server's log) and per
  CONNECT request to a watched host (tinyproxy's log);
- one ``socks`` contact per SOCKS request the proxy refused (dante's log says which client
  connections never got a tunnel; the client's own record, curl's ``%{local_port}`` next to its
  URL, names the host the request was for). Tunnels that opened show as the TLS and HTTP
  contacts above, with ``via_proxy``.

``process`` comes from the User-Agent of the requests on the connection; for DNS queries and
CONNECT requests (whose logs carry no User-Agent) it is the one client that talked to that host in
the scenario, and derivation fails rather than guess when more than one did.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList

# Clients of the lab that are not Go tools (the analyzer's causes stage names these too).
NOT_GO_CLIENTS = frozenset({"curl"})

Findings = Callable[[dict[str, Any]], list[str]]


class DerivationError(RuntimeError):
    pass


def process_from_user_agent(ua: str | None) -> str | None:
    if not ua:
        return None
    if ua.startswith("GoCommand/") or ua.startswith("Go-http-client/"):
        return "go"
    if ua.startswith("node-fetch/") or ua.startswith("node"):
        return "node"
    if ua.startswith("curl/"):
        return "curl"
    if ua.startswith("git/"):
        # git's HTTPS transport runs in its helper process, git-remote-https (comm is truncated
        # to 15 characters by the kernel).
        return "git-remote-http"
    return None


def operation_for(host: str, path: str, process: str | None) -> str | None:
    """The Go operation a request path is (DESIGN.md's operation names)."""
    split = urlsplit(path)
    p, query = split.path, split.query
    if "go-get=1" in query.split("&"):
        return "go-get-meta"
    if host == "vuln.go.dev" and (p.startswith("/index/") or p.startswith("/ID/")):
        return "vuln-db"
    if host == "telemetry.go.dev" and p.startswith("/upload/"):
        return "telemetry"
    if host == "go.dev" and p == "/dl/" and "mode=json" in query:
        return "go-release-check"
    if "/info/refs" in p or p.endswith("/git-upload-pack"):
        return "vcs-fetch"
    if p.startswith("/go/v0.0.1-go") or "golang.org/toolchain/@v/" in p and p.endswith(".zip"):
        return "toolchain-download"
    if p.endswith("/sumdb/sum.golang.org/supported"):
        return "sumdb-supported"
    if p == "/latest" or p.endswith("/sumdb/sum.golang.org/latest"):
        return "sumdb-latest"
    if "/lookup/" in p:
        return "sumdb-lookup"
    if "/tile/" in p:
        return "sumdb-tile"
    if "/golang.org/x/tools/gopls/@v/" in p and p.endswith(".info") and process == "node":
        return "gopls-version-check"
    if p.endswith("/@latest"):
        return "module-latest"
    for suffix, op in (("/@v/list", "module-list"), (".info", "module-info"),
                       (".mod", "module-mod"), (".zip", "module-zip")):
        if "/@v/" in p and p.endswith(suffix):
            return op
    return None


Owners = dict[tuple[str, int], dict[str, Any]]


def socket_owners(processes: Iterable[dict[str, Any]], connections: Iterable[dict[str, Any]],
                  server_ip: str) -> Owners:
    """(proto, local port) -> the process that owned that socket, from a strace trace
    (straced.py): comm, pid, its ancestors' comms (nearest first) and its Go environment.
    Only sockets to the lab server (TLS, HTTP, DNS) count."""
    by_pid = {p["pid"]: p for p in processes}
    owners: Owners = {}
    for c in connections:
        if c["remote_ip"] != server_ip or c.get("local_port") is None:
            continue
        proc = by_pid.get(c["pid"], {})
        chain, parent = [], by_pid.get(proc.get("ppid"))
        while parent is not None and len(chain) < 8:
            chain.append(parent)
            parent = by_pid.get(parent.get("ppid"))
        env = proc.get("env", {})
        owners[(c["proto"], c["local_port"])] = {
            "process": c["comm"], "pid": c["pid"], "ancestors": [a["comm"] for a in chain],
            "ancestor_pids": [a["pid"] for a in chain],
            "process_argv": proc.get("argv", []), "process_env": env,
            "env_set_by": {name: setter_of(by_pid, c["pid"], name) for name in sorted(env)}}
    return owners


def setter_of(by_pid: dict[int, dict[str, Any]], pid: int, name: str) -> dict[str, Any] | None:
    """Which traced process gave ``pid`` its value of ``name``: the nearest ancestor that started
    a child with a value it did not have itself (pid, comm); None when the value came from above
    the trace (the traced root already had it)."""
    child = by_pid[pid]
    value = child["env"].get(name)
    parent = by_pid.get(child.get("ppid"))
    while parent is not None:
        if parent["env"].get(name) != value:
            return {"pid": parent["pid"], "comm": parent["comm"]}
        child, parent = parent, by_pid.get(parent.get("ppid"))
    return None


def derive_expected(*, client_ip: str, proxy_ip: str | None, watch: WatchList,
                    server_events: Iterable[dict[str, Any]], dns_queries: Iterable[dict[str, Any]],
                    proxy_requests: Iterable[dict[str, Any]], findings: Findings,
                    socks_requests: Iterable[dict[str, Any]] = (),
                    socks_clients: Iterable[dict[str, Any]] = (),
                    owners: Owners | None = None) -> list[dict[str, Any]]:
    """With ``owners`` (a strace trace of the clients), each contact's process, ancestors and
    Go environment come from the trace (the socket's local port), not from the User-Agent; a
    contact the trace does not explain is an error."""
    events = list(server_events)
    socks_requests = list(socks_requests)
    # A connection dante opened for a SOCKS client -> that client's port (dante logs both ends).
    tunnelled_from = {tuple(r["outbound"]): r["client_port"] for r in socks_requests
                      if r.get("outbound") and r["client_ip"] == client_ip}
    requests = [e for e in events if e.get("event") == "request"]
    handshakes = [e for e in events if e.get("event") == "tls"]
    # Connections the client namespace made: directly, or through the forward proxy (which
    # connects from the server namespace's own address).
    sources = {client_ip} | ({proxy_ip} if proxy_ip else set())

    def conn_key(e: dict[str, Any]) -> tuple[str, int]:
        return (e["client_ip"], e["client_port"])

    conn_process: dict[tuple[str, int], str] = {}
    conn_ops: dict[tuple[str, int], list[str]] = defaultdict(list)
    conn_redirects: dict[tuple[str, int], list[str]] = defaultdict(list)
    host_processes: dict[str, set[str]] = defaultdict(set)
    for r in requests:
        proc = process_from_user_agent(r.get("user_agent"))
        if proc:
            conn_process.setdefault(conn_key(r), proc)
            host_processes[r["host"]].add(proc)
        op = operation_for(r["host"], r["path"], proc)
        if op:
            conn_ops[conn_key(r)].append(op)
        if r.get("location"):
            conn_redirects[conn_key(r)].append(r["location"])

    def only_process(host: str, layer: str) -> str | None:
        procs = host_processes.get(host, set())
        if len(procs) > 1:
            raise DerivationError(f"{layer} contact with {host}: several clients talked to it "
                                  f"({sorted(procs)}); the logs cannot say which one this was")
        return next(iter(procs), None)

    expected: list[dict[str, Any]] = []

    def add(entry: dict[str, Any], proto: str = "tcp") -> None:
        if owners is not None:
            owner = owners.get((proto, entry.get("client_port") or -1))
            if owner is None:
                raise DerivationError(f"{entry['layer']} contact with {entry['host']} from port "
                                      f"{entry.get('client_port')}: no traced process owned it")
            entry.update(owner)
        entry["findings"] = findings(entry)
        if entry.get("process") in NOT_GO_CLIENTS and entry["host"] in DEFAULT_HOSTS:
            # The recording carries each process's environment, so the analyzer explains every
            # contact from it; curl reaching a Go host is something Go's settings do not cause.
            entry["findings"] = [*entry["findings"], "config-unexplained"]
        expected.append(entry)

    for q in dns_queries:
        if q["client_ip"] != client_ip or not watch.matches(q["name"]):
            continue
        add({"ts": q["ts"], "host": q["name"], "layer": "dns", "qtype": q["qtype"],
             "process": None if owners is not None else only_process(q["name"], "dns"),
             "operation": None, "answers": q["answers"], "client_port": q["client_port"]}, "udp")
    for h in handshakes:
        sni = h.get("sni")
        if h["client_ip"] not in sources or not sni or not watch.matches(sni):
            continue
        key = conn_key(h)
        add({"ts": h["ts"], "host": sni, "layer": "tls",
             "process": None if owners is not None else conn_process.get(key) or only_process(sni, "tls"),
             "operation": None,
             "operations": conn_ops.get(key, []),
             # Where the server redirected requests on this connection (seen with the key log).
             "redirects": conn_redirects.get(key, []), "tls_ok": h["ok"], "tls_version": h.get("version"),
             # The certificate is on the wire (and its issuer checkable) only below TLS 1.3.
             "cert_issuer": h.get("issuer") if h.get("version") in ("TLSv1.2", "TLSv1.1") else None,
             "via_proxy": h["client_ip"] == proxy_ip and proxy_ip != client_ip,
             # Names the connection in the key log and the capture, tunnelled ones too.
             "client_random": h.get("client_random"),
             "client_port": h["client_port"] if h["client_ip"] == client_ip
             else tunnelled_from.get((h["client_ip"], h["client_port"]))})
    for r in requests:
        if r["tls"] or r["client_ip"] not in sources or not watch.matches(r["host"]):
            continue
        proc = process_from_user_agent(r.get("user_agent"))
        entry = {"ts": r["ts"], "host": r["host"], "layer": "http", "process": proc,
                 "operation": operation_for(r["host"], r["path"], proc), "method": r["method"],
                 "path": r["path"], "status": r["status"], "client_port": r["client_port"]}
        if r["client_ip"] != client_ip:  # sent through a proxy (a SOCKS tunnel)
            entry |= {"client_port": tunnelled_from.get((r["client_ip"], r["client_port"])),
                      "via_proxy": True}
        add(entry)
    for c in proxy_requests:
        if c["method"] != "CONNECT" or not watch.matches(c["host"]):
            continue
        add({"ts": None, "host": c["host"], "layer": "http", "process": only_process(c["host"], "http"),
             "operation": None, "method": "CONNECT", "path": c["target"], "via_proxy": True})
    by_port = {c["client_port"]: c for c in socks_clients}
    for r in socks_requests:
        if r["client_ip"] != client_ip or r["established"]:
            continue
        client = by_port.get(r["client_port"])
        if client is None:
            raise DerivationError(f"refused SOCKS request from port {r['client_port']}: no "
                                  "client step says which host it was for")
        host = r.get("host") or client["host"]
        if not watch.matches(host):
            continue
        add({"ts": r["ts"], "host": host, "layer": "socks", "process": client["process"],
             "operation": None, "via_proxy": True, "client_port": r["client_port"]})
    expected.sort(key=lambda e: (e["ts"] is None, e["ts"] or 0.0))
    return expected


def go_x_mismatches(go_x: Iterable[dict[str, Any]], server_events: Iterable[dict[str, Any]]) -> list[str]:
    """Fetches the go command reported with -x that the lab server did not log (should be none)."""
    seen = {(e["host"], e["path"]) for e in server_events if e.get("event") == "request"}
    missing = []
    for item in go_x:
        url = urlsplit(item["url"])
        path = url.path + (f"?{url.query}" if url.query else "")
        if (url.hostname, path) not in seen:
            missing.append(item["url"])
    return missing
