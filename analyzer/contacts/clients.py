"""Which client software sent a request, inferred from its User-Agent or its TLS fingerprint.

This is the weakest attribution tier ("inferred"): it names software, never a process.
Sources: ../shared/GO_NETWORK_FACTS.md sections 2 (User-Agents) and 9 (JA4 measurements).
"""

from __future__ import annotations

# (prefix, client), matched case-insensitively against the start of the User-Agent.
_UA_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gocommand/", "go-command"),          # go1.27+: "GoCommand/1 (+https://go.dev/cmd/go)"
    ("go-http-client/", "go-net-http"),    # go <=1.26 and every Go net/http program
    ("node-fetch", "node"),                # vscode-go: "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"
    ("undici", "node"),
    ("node/", "node"),
    ("axios/", "node"),
    ("curl/", "curl"),
    ("git/", "git"),                       # git-remote-https: "git/2.39.5"
    ("python-requests/", "python"),
    ("python-urllib/", "python"),
    ("python-httpx/", "python"),
    ("python/", "python"),
    ("aiohttp/", "python"),
    ("wget/", "wget"),
)


def client_from_user_agent(ua: str | None) -> str | None:
    """The client family a User-Agent names, or None when it names none we know."""
    if not ua:
        return None
    text = ua.strip().lower()
    if text == "node":
        return "node"
    for prefix, client in _UA_PREFIXES:
        if text.startswith(prefix):
            return client
    return None


_GO_SHARED = "any Go program using net/http's default TLS settings shares it"

# JA4 -> (client, evidence). Measured on loopback against a name (SNI present, JA4 "d"); see
# GO_NETWORK_FACTS.md section 9. Lab measurements are added here as they are recorded.
JA4_TABLE: dict[str, tuple[str, str]] = {
    "t13d1312h2_f57a46bbacb6_f50d94e863eb":
        ("go-command", f"JA4 of go1.27.3's go command (measured; {_GO_SHARED})"),
    "t13d131100_f57a46bbacb6_f50d94e863eb":
        ("go-command", "JA4 of go1.27.3's go command GOINSECURE fallback client, no ALPN (measured)"),
    "t13d1312h2_f57a46bbacb6_ab7e3b40a677":
        ("go-command", "JA4 of the go1.25/go1.26 go command (measured, go1.26.8 in the lab; "
                       "gopls and govulncheck built with go1.26.8 send the same, as does "
                       f"{_GO_SHARED[4:]})"),
    "t13d1311h2_f57a46bbacb6_e7c285222651":
        ("go-command", f"JA4 of go1.24's go command (measured; {_GO_SHARED})"),
    "t13d1911h2_9dc949149365_e7c285222651":
        ("go-command", f"JA4 of the go1.21-go1.23 go command (measured; {_GO_SHARED})"),
    "t13d190900_9dc949149365_97f8aa674fd9":
        ("go-net-http", "JA4 of a bare Go crypto/tls client, older Go (FoxIO ja4plus mapping)"),
    "t13d191000_9dc949149365_e7c285222651":
        ("go-net-http", "JA4 of a Go program (ngrok 3.8.0, FoxIO ja4plus mapping)"),
    "t13d2912h2_723694b0fccc_288f874c93d6":
        ("git", "JA4 of git 2.39 git-remote-https, libcurl/OpenSSL 3 (measured)"),
    "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6":
        ("curl", "JA4 of curl 7.88.1 with OpenSSL 3.0 (measured)"),
    "t13d591000_a33745022dd6_1f22a2ca17c4":
        ("node", "JA4 of Node 20 https, as used by node-fetch v2 in vscode-go (measured)"),
    "t13d5911h1_a33745022dd6_1f22a2ca17c4":
        ("node", "JA4 of Node 20 global fetch (undici) (measured)"),
}


def client_from_ja4(ja4: str | None) -> tuple[str, str] | None:
    """(client, evidence) for a known JA4, or None.

    A connection to an IP literal carries no SNI. That changes JA4's fourth character ("i"
    instead of "d") and, since the server_name extension is missing, lowers the extension count
    by one (measured: go1.27.3 to 127.0.0.1 gives t13i1311h2_..., to localhost t13d1312h2_...).
    The hashed parts leave SNI out, so they do not change; such a JA4 is matched to its "d" form.
    """
    if not ja4:
        return None
    key = ja4.strip().lower()
    if key in JA4_TABLE:
        return JA4_TABLE[key]
    if len(key) > 8 and key[3] == "i" and key[6:8].isdigit():
        with_sni = f"{key[:3]}d{key[4:6]}{int(key[6:8]) + 1:02d}{key[8:]}"
        hit = JA4_TABLE.get(with_sni)
        if hit is not None:
            return hit[0], f"{hit[1]}; connection without SNI"
    return None


# Operations only the go command performs (module proxy, checksum database, go-get, toolchain),
# and those of golang.org/x/vuln's client (gopls, govulncheck), never the go command.
_GO_COMMAND_OPERATIONS = ("module-", "sumdb-", "go-get-meta", "toolchain-download")
_VULN_HOSTS = frozenset({"vuln.go.dev"})


def _go_family(client: str | None) -> bool:
    return client in ("go-command", "go-net-http")


def infer_client(ja4: str | None, user_agent: str | None, host: str | None = None,
                 operations: tuple[str, ...] = ()) -> tuple[str | None, str | None]:
    """(client, evidence) from everything one connection shows: the JA4 of its ClientHello (None
    for plain HTTP), the User-Agent and the Go operations of its requests, the host.

    Go programs built with one Go version share its crypto/tls and net/http: the go1.26.8 go
    command, and gopls and govulncheck built with go1.26.8, send the same JA4 and the same
    ``Go-http-client/1.1`` (measured in the lab). What they ask tells them apart where it can:
    module proxy and checksum database requests are the go command's (before go1.27, which says
    ``GoCommand/1``), the vulnerability database is read by gopls and govulncheck. Anything
    finer (gopls or govulncheck, which go command) is the process attribution's to say."""
    by_ja4 = client_from_ja4(ja4)
    by_ua = client_from_user_agent(user_agent)
    client, evidence = by_ja4 if by_ja4 else (None, None)
    if by_ua:
        client, evidence = by_ua, f"User-Agent: {user_agent}"
    go_tls = by_ja4 is None and ja4 is None or by_ja4 is not None and _go_family(by_ja4[0])
    if not go_tls or not _go_family(client) or by_ua == "go-command":
        return client, evidence
    asked = ", ".join(dict.fromkeys(operations))
    seen = f"User-Agent: {user_agent}" if by_ua else f"JA4 {ja4}"
    if by_ua and by_ja4:
        seen += f", JA4 {ja4}"
    if "vuln-db" in operations or (host or "").lower() in _VULN_HOSTS:
        return "go-net-http", (f"{seen}, vulnerability database ({asked or host}): a Go program "
                               "such as gopls or govulncheck (golang.org/x/vuln), not the go command")
    if any(op.startswith(_GO_COMMAND_OPERATIONS) for op in operations):
        return "go-command", (f"{seen} asking {asked}: the go command (before go1.27, whose "
                              "User-Agent is GoCommand/1); other Go programs of the same Go "
                              "version send the same User-Agent and JA4")
    return client, evidence
