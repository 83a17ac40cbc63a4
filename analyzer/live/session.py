"""A live session: tracer + capture around a command (``run``) or a duration (``capture``).

Order matters for complete results: the tracer attaches first, then the capture starts, then
the command runs; on the way out the capture stops after the command (and after a short grace
period for the last packets), the tracer last. Ctrl-C and SIGTERM end the command, never the
write-up: the pcapng is finished and the report produced either way.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..attribution import ebpf, strace
from ..attribution.gotrace import apply_go_trace, parse_get_line
from ..attribution.joiner import SocketAttributor
from ..attribution.procfs import ProcfsPoller, chain_records
from ..base.errors import ProxytraceError
from ..base.exitcodes import MISSING_TOOL, NO_PERMISSION
from ..base.model import Contact
from ..causes import GoConfig
from ..pipeline import AnalyzeOptions, Report, analyze_files
from . import early
from .annotate import AnnotateResult, annotate_capture
from .backends import Capture, CaptureCounts
from .privileges import capture_problem, invoking_user
from .timing import stamp

TIERS = ("auto", "ebpf", "strace", "procfs")
# Seconds of capture after the command ends, for its last packets in flight (the peer's side of
# a connection closed at exit). Everything the command itself sent is already in the capture's
# ring when it exits; the stop's marker round (marker.py) then gets it into the file.
GRACE = 0.05


class LiveError(ProxytraceError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class LiveResult:
    report: Report
    pcapng: Path
    tier: str
    counts: CaptureCounts
    annotated: AnnotateResult
    notes: list[str] = field(default_factory=list)
    exit_status: int = 0
    root_pid: int | None = None

    def unattributed(self) -> int:
        return sum(1 for c in self.report.contacts if c.process is None)


def default_pcapng_name(now: float | None = None) -> Path:
    return Path.cwd() / time.strftime("proxytrace-%Y%m%d-%H%M%S.pcapng", time.localtime(now))


def choose_tier(requested: str, for_run: bool) -> tuple[str, list[str]]:
    """The tier to use, with a note for each stronger one that is not available."""
    notes: list[str] = []
    if requested == "ebpf" or requested == "auto":
        why = ebpf.unavailable_reason()
        if why is None:
            return "ebpf", notes
        if requested == "ebpf":
            code = MISSING_TOOL if "not installed" in why else NO_PERMISSION
            raise LiveError(f"--attribution ebpf: {why}", code)
        notes.append(f"ebpf tier unavailable: {why}")
    if for_run and requested in ("auto", "strace"):
        why = strace.unavailable_reason()
        if why is None:
            return "strace", notes
        if requested == "strace":
            raise LiveError(f"--attribution strace: {why}", MISSING_TOOL)
        notes.append(f"strace tier unavailable: {why}")
    if requested == "strace":
        raise LiveError("--attribution strace traces a command: use it with `run`", 2)
    return "procfs", notes


def resolve_backend(backend: str) -> str:
    """The capture program, with a fallback when the requested one is missing."""
    if shutil.which(backend):
        return backend
    for other in ("tcpdump", "dumpcap"):
        if other != backend and shutil.which(other):
            sys.stderr.write(f"proxytrace: {backend} is not installed; capturing with {other}\n")
            return other
    raise LiveError("neither tcpdump nor dumpcap is installed: install tcpdump (or Wireshark's "
                    "dumpcap) to capture", MISSING_TOOL)


def default_filter(env: Mapping[str, str] | None = None, config: GoConfig | None = None) -> str:
    """The capture filter for the watch list plus the ports of the proxies ``env`` would use
    (GOPROXY through the go command's own configuration chain, HTTPS_PROXY/HTTP_PROXY/ALL_PROXY),
    so a private mirror on port 8443, a forward proxy on 3128 or a SOCKS proxy's answers are not
    filtered away."""
    from ..base.watchlist import WatchList
    from ..filters.bpf import capture_filter_for_proxies

    env = dict(os.environ if env is None else env)
    if config is None:
        config = _go_config(env)
    setting = config.get("GOPROXY")
    goproxy = setting.value if setting is not None else ""
    forwards = [v for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                            "ALL_PROXY", "all_proxy") if (v := env.get(k))]
    return capture_filter_for_proxies(WatchList.build(), goproxy, forwards)


def _go_config(env: Mapping[str, str]) -> GoConfig:
    """What a go command started with ``env`` would use (runs ``go env`` once)."""
    from ..causes import config_from_env, find_go_binary

    return config_from_env(env, find_go_binary(env))


class _Tracer:
    """ebpf or procfs, started before the capture; strace wraps the command instead."""

    def __init__(self, tier: str) -> None:
        self.tier = tier
        self._impl: ebpf.EbpfTracer | ProcfsPoller | None = None
        if tier == "ebpf":
            self._impl = early.take() or ebpf.EbpfTracer()
        elif tier == "procfs":
            self._impl = ProcfsPoller()

    def launch(self) -> None:
        """Start the slow part early (bpftrace, when used, compiles its script meanwhile)."""
        if isinstance(self._impl, ebpf.EbpfTracer) and not self._impl.launched:
            try:
                self._impl.launch()
            except OSError as exc:
                raise LiveError(f"{self.tier} tracer: {exc}", MISSING_TOOL) from None

    def start(self) -> None:
        """Return once tracing has started (after ``launch``, or launching now)."""
        if self._impl is None:
            return
        try:
            if isinstance(self._impl, ebpf.EbpfTracer):
                self._impl.wait_ready()
                self._impl.sync()  # ready means it has seen traffic: a connect of our own
            else:
                self._impl.start()
        except (RuntimeError, OSError) as exc:
            raise LiveError(f"{self.tier} tracer: {exc}", MISSING_TOOL) from None

    def describe(self) -> str:
        """The tier, and for ebpf the program that loads the kernel program (timing lines)."""
        if isinstance(self._impl, ebpf.EbpfTracer):
            return f"{self.tier}, {self._impl.program}"
        return self.tier

    def note(self) -> str | None:
        """What the run's summary should say about the tracer (the loader's fallback)."""
        return self._impl.fallback_note if isinstance(self._impl, ebpf.EbpfTracer) else None

    def stop(self) -> SocketAttributor | None:
        if isinstance(self._impl, ebpf.EbpfTracer):
            # Every event is read once the tracer has synced; bpftrace's own exit (detaching
            # its tracepoints, about a second) is not waited for.
            return self._impl.stop(wait_exit=False)
        return self._impl.stop() if self._impl is not None else None


def _start_both(tracer: _Tracer, capture: Capture) -> None:
    """Start the tracer and the capture side by side (each takes a second or so); both must be
    running before the traced activity begins."""
    def timed(what: Callable[[], str], fn: Callable[[], None]) -> None:
        fn()
        stamp(f"{what()} ready")  # named after the start: the ebpf tracer may have fallen back

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            t = pool.submit(timed, lambda: f"tracer ({tracer.describe()})", tracer.start)
            c = pool.submit(timed, lambda: f"capture ({capture.backend})", capture.start)
            errors = [f.exception() for f in (t, c)]
    except BaseException:  # Ctrl-C while starting: leave nothing running
        _stop_both(tracer, capture)
        raise
    if any(errors):
        _stop_both(tracer, capture)
        err = next(e for e in errors if e is not None)
        if isinstance(err, LiveError):
            raise err
        raise LiveError(str(err), NO_PERMISSION)


def _stop_both(tracer: _Tracer, capture: Capture) -> tuple[CaptureCounts, SocketAttributor | None]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        c = pool.submit(capture.stop)
        t = pool.submit(tracer.stop)
        return c.result(), t.result()


@dataclass
class LiveOptions:
    analyze: AnalyzeOptions
    tier: str = "auto"
    backend: str = "tcpdump"
    interface: str = "any"
    bpf: str | None = None
    write: Path | None = None
    system: bool = False
    go_trace: bool = False


def _prepare(opts: LiveOptions, for_run: bool) -> tuple[str, str, list[str], Path]:
    backend = resolve_backend(opts.backend)
    tool = shutil.which(backend) or backend
    problem = capture_problem(tool)
    if problem:
        raise LiveError(problem, NO_PERMISSION)
    tier, notes = choose_tier(opts.tier, for_run)
    workdir = Path(tempfile.mkdtemp(prefix="proxytrace-"))
    return backend, tier, notes, workdir


def _command_env(go_trace: bool) -> dict[str, str]:
    env = dict(os.environ)
    if go_trace:
        flags = env.get("GOFLAGS", "").split()
        if "-x" not in flags:
            flags.append("-x")
        env["GOFLAGS"] = " ".join(flags)
    return env


def _as_user_kwargs() -> dict[str, object]:
    user = invoking_user()
    if user is None:
        return {}
    uid, gid = user
    try:
        groups = os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:
        groups = [gid]
    return {"user": uid, "group": gid, "extra_groups": groups}


def _tee_stderr(stream: BinaryIO, sink: list[tuple[float, str]]) -> None:
    """Copy the command's stderr through, stamping each line as it arrives (unbuffered pipe:
    a buffered reader would hand over lines in late batches and spoil the stamps)."""
    out = sys.stderr.buffer
    for raw in iter(stream.readline, b""):
        sink.append((time.time(), raw.decode(errors="replace")))
        out.write(raw)
        out.flush()


def run_command(command: Sequence[str], opts: LiveOptions,
                on_started: Callable[[int], None] | None = None) -> LiveResult:
    """Run ``command`` under capture and attribution; the report covers its process tree."""
    if shutil.which(command[0]) is None:
        raise LiveError(f"{command[0]}: command not found", 127)
    stamp("run: start")
    backend, tier, notes, workdir = _prepare(opts, for_run=True)
    stamp(f"prepared (backend {backend}, tier {tier})")
    raw = workdir / ("raw.pcapng" if backend == "dumpcap" else "raw.pcap")
    tracer = _Tracer(tier)
    tracer.launch()  # compiles while `go env` runs and the capture starts
    try:
        child_env = _command_env(opts.go_trace)
        child_config = _go_config(child_env)  # for the capture filter and, afterwards, the causes
        bpf = opts.bpf if opts.bpf is not None else default_filter(child_env, child_config)
        stamp("go env and capture filter")
        capture = Capture(backend, opts.interface, bpf, raw)
    except BaseException:
        tracer.stop()
        raise
    _start_both(tracer, capture)
    stamp("tracer and capture started")
    notes.extend(n for n in [tracer.note()] if n)
    strace_out = workdir / "strace.txt"
    argv = list(command)
    kwargs = _as_user_kwargs()
    if tier == "strace":
        argv = strace.strace_argv(str(strace_out), command)
        # Stop the command only at the traced calls (a seccomp filter), not at every system
        # call: a syscall-heavy build otherwise runs several times slower under strace.
        if "--seccomp-bpf" not in argv:
            argv[1:1] = ["--seccomp-bpf"]
        if kwargs:
            # strace itself stays root so it may trace; it drops to the user for the command.
            user = pwd.getpwuid(int(kwargs["user"])).pw_name  # type: ignore[call-overload]
            argv[1:1] = ["-u", user]
            kwargs = {}
    stderr_lines: list[tuple[float, str]] = []
    try:
        proc = subprocess.Popen(argv, env=child_env,  # noqa: S603 - argument list
                                stderr=subprocess.PIPE if opts.go_trace else None, bufsize=0,
                                **kwargs)  # type: ignore[call-overload]
    except BaseException:
        _stop_both(tracer, capture)
        raise
    tee = None
    if opts.go_trace and proc.stderr is not None:
        tee = threading.Thread(target=_tee_stderr, args=(proc.stderr, stderr_lines), daemon=True)
        tee.start()
    # strace sees only the tree below it: the processes above (strace, proxytrace, the shell)
    # are read now, while they run, so each contact's chain reaches the user's shell
    outer = chain_records(proc.pid, time.time(), {}) if tier == "strace" else []
    if on_started:
        on_started(proc.pid)
    stamp(f"command started (pid {proc.pid})")
    status = _wait(proc)
    stamp("command exited")
    if tee:
        tee.join(timeout=5)
    time.sleep(GRACE)
    counts, attributor = _stop_both(tracer, capture)
    stamp("tracer and capture stopped")
    root_pid = proc.pid
    if tier == "strace":
        attributor = strace.attributor_from_file(str(strace_out), root_ppid=proc.pid, outer=outer)
        root_pid = attributor.root_pid if attributor.root_pid is not None else proc.pid
    result = _finish(raw, opts, tier, capture, counts, attributor, notes)
    result.exit_status = status
    result.root_pid = root_pid
    contacts = result.report.contacts
    if not opts.system and attributor is not None:
        contacts = [c for c in contacts
                    if c.process is None or attributor.in_tree(c.process.pid, root_pid)]
    if opts.go_trace:
        gets = [g for g in (parse_get_line(line, ts) for ts, line in stderr_lines) if g]
        contacts = apply_go_trace(contacts, gets, _go_pids(attributor, root_pid))
    result.report.contacts = _with_causes(contacts, child_config, opts)
    return result


def _with_causes(contacts: list[Contact], config: GoConfig, opts: LiveOptions) -> list[Contact]:
    """The child's configuration is known here: give each contact the setting that caused it
    (after --go-trace has named the operations the causes speak of), from its own process's
    environment when the tier recorded it."""
    from ..causes.contact import apply_process_causes

    return apply_process_causes(contacts, config, redact_values=opts.analyze.redact)


def _go_pids(attributor: SocketAttributor | None, root: int) -> set[int] | None:
    if attributor is None:
        return None
    return {p.pid for p in attributor.processes.values()
            if p.comm == "go" and attributor.in_tree(p.pid, root)}


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """Wait for the command; Ctrl-C / SIGTERM are passed on to it and then waited out."""
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    old_int = signal.signal(signal.SIGINT, forward)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                status = proc.wait()
                break
            except InterruptedError:
                continue
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    return 128 - status if status < 0 else status


def capture_for(duration: float | None, opts: LiveOptions,
                on_started: Callable[[str], None] | None = None) -> LiveResult:
    """System-wide capture until ``duration`` passes or Ctrl-C / SIGTERM."""
    backend, tier, notes, workdir = _prepare(opts, for_run=False)
    raw = workdir / ("raw.pcapng" if backend == "dumpcap" else "raw.pcap")
    tracer = _Tracer(tier)
    tracer.launch()
    try:
        bpf = opts.bpf if opts.bpf is not None else default_filter()
        capture = Capture(backend, opts.interface, bpf, raw)
    except BaseException:
        tracer.stop()
        raise
    stop = threading.Event()

    def stop_now(_signum: int, _frame: object) -> None:
        stop.set()

    # Ctrl-C from the ready line on (or while starting) ends the capture, never the write-up.
    old_int = signal.signal(signal.SIGINT, stop_now)
    old_term = signal.signal(signal.SIGTERM, stop_now)
    try:
        _start_both(tracer, capture)
        stamp("tracer and capture started")
        notes.extend(n for n in [tracer.note()] if n)
        if on_started:
            on_started(tier)
        stop.wait(duration)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    counts, attributor = _stop_both(tracer, capture)
    return _finish(raw, opts, tier, capture, counts, attributor, notes)


def _finish(raw: Path, opts: LiveOptions, tier: str, capture: Capture, counts: CaptureCounts,
            attributor: SocketAttributor | None, notes: list[str]) -> LiveResult:
    out = opts.write or default_pcapng_name()
    skip = capture.marker.is_marker if capture.marker is not None else None
    try:
        if not raw.exists():
            raise LiveError(f"{capture.backend} wrote no capture file", MISSING_TOOL)
        annotated = annotate_capture(raw, out, attributor, counts, opts.interface,
                                     redact=opts.analyze.redact, skip=skip)
    finally:
        shutil.rmtree(raw.parent, ignore_errors=True)  # the raw capture and strace log
    stamp(f"pcapng written ({annotated.packets} packets)")
    report = analyze_files([out], opts.analyze, attributor=attributor)
    stamp("analysed")
    return LiveResult(report, out, tier, counts, annotated, notes)


def unattributed_by_tier(contacts: Sequence[Contact], tier: str) -> dict[str, int]:
    """Contacts per tier that found their process, and how many none did (under ``tier``)."""
    counts: dict[str, int] = {}
    for c in contacts:
        key = c.process.source if c.process else f"unattributed ({tier})"
        counts[key] = counts.get(key, 0) + 1
    return counts
