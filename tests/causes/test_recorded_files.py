"""The Go configuration files a capture carries (``GoFiles:``): recorded as the capturing
machine had them, read back by both engines, and preferred over the analysing machine's files."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.attribution.joiner import SocketAttributor
from analyzer.attribution.records import ProcessRecord, SocketRecord
from analyzer.base.model import GoFiles, ProcessInfo
from analyzer.causes.contact import process_config
from analyzer.causes.goconfig import GOROOT_ENV, GOROOT_ENV_RECORDED
from analyzer.causes.sources import record_go_files
from analyzer.live.annotate import annotate_capture
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES

DEFAULTS = "GOPROXY=https://proxy.golang.org,direct\nGOSUMDB=sum.golang.org\nGOTOOLCHAIN=auto\n"


@pytest.fixture
def goroot(tmp_path: Path) -> Path:
    root = tmp_path / "goroot"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "go").write_text("")
    (root / "go.env").write_text("# defaults of this distribution\n" + DEFAULTS)
    return root


def _go(goroot: Path, home: Path, go_files: GoFiles | None = None) -> ProcessInfo:
    return ProcessInfo(pid=30, comm="go", cmdline="go mod download", ppid=1, source="ebpf",
                       exe=str(goroot / "bin" / "go"), env=(("HOME", str(home)),),
                       go_files=go_files)


def test_records_only_go_lines_with_credentials_hidden(tmp_path: Path, goroot: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "go").mkdir(parents=True)
    (home / ".config" / "go" / "env").write_text(
        "GOPROXY=https://user:secret@corp.example/mod,direct\nEDITOR=vi\nlowercase=x\n")
    files = record_go_files((("HOME", str(home)),), str(goroot / "bin" / "go"))
    assert files.goroot == str(goroot)
    assert dict(files.files) == {
        str(home / ".config" / "go" / "env"): "GOPROXY=https://xxxxx@corp.example/mod,direct\n",
        str(goroot / "go.env"): DEFAULTS,  # the comment line is not carried
    }
    kept = record_go_files((("HOME", str(home)),), str(goroot / "bin" / "go"), redact_values=False)
    assert "user:secret@" in dict(kept.files)[str(home / ".config" / "go" / "env")]


def test_a_missing_goenv_file_is_recorded_as_missing(tmp_path: Path, goroot: Path) -> None:
    files = record_go_files((("HOME", str(tmp_path / "nohome")),), str(goroot / "bin" / "go"))
    assert dict(files.files)[str(tmp_path / "nohome" / ".config" / "go" / "env")] is None
    # and the capture's "no such file" wins over a file this machine has at that path
    (tmp_path / "nohome" / ".config" / "go").mkdir(parents=True)
    (tmp_path / "nohome" / ".config" / "go" / "env").write_text("GOPROXY=off\n")
    cfg = process_config(_go(goroot, tmp_path / "nohome", files))
    assert cfg is not None and cfg.get("GOPROXY").source == GOROOT_ENV_RECORDED  # type: ignore[union-attr]


def test_recorded_goroot_wins_over_this_machines(tmp_path: Path, goroot: Path) -> None:
    home = tmp_path / "home"
    files = record_go_files((("HOME", str(home)),), str(goroot / "bin" / "go"))
    (goroot / "go.env").write_text("GOPROXY=https://changed.example\n")  # this machine's, now
    recorded = process_config(_go(goroot, home, files))
    assert recorded is not None
    assert recorded.get("GOPROXY") is not None
    assert (recorded.get("GOPROXY").value, recorded.get("GOPROXY").source) == (  # type: ignore[union-attr]
        "https://proxy.golang.org,direct", GOROOT_ENV_RECORDED)
    # without recorded files: as before, this machine's file
    here = process_config(_go(goroot, home))
    assert here is not None
    assert (here.get("GOPROXY").value, here.get("GOPROXY").source) == (  # type: ignore[union-attr]
        "https://changed.example", GOROOT_ENV)
    # a go whose GOROOT the capturing machine could not find gets no guessed defaults
    assert process_config(_go(goroot, home, GoFiles(None, ()))) is None


def _annotated(tmp_path: Path, goroot: Path, home: Path) -> Path:
    """default.pcapng with every flow attributed to a go whose files are ``goroot``'s."""
    source = CAPTURES / "default.pcapng"
    plain = analyze_files([source], AnalyzeOptions())
    flows = {(c.src, c.sport, c.dst, c.dport, c.transport) for c in plain.contacts}
    sockets = [SocketRecord(ts=min(c.ts for c in plain.contacts) - 1, pid=30, transport=t,  # type: ignore[arg-type]
                            local=src, local_port=sport, remote=dst, remote_port=dport,
                            source="ebpf", comm="go")
               for src, sport, dst, dport, t in flows]
    procs = [ProcessRecord(pid=30, ppid=1, comm="go", cmdline="go mod download",
                           exe=str(goroot / "bin" / "go"), ts=0.0, env=(("HOME", str(home)),))]
    out = tmp_path / "annotated.pcapng"
    annotate_capture(source, out, SocketAttributor("ebpf", sockets, procs))
    return out


@pytest.mark.parametrize("engine", ["builtin", "tshark"])
def test_capture_analysed_where_its_goroot_differs(tmp_path: Path, goroot: Path,
                                                   engine: str) -> None:
    """Written by `capture`, rewritten by editcap, analysed after the machine's go.env changed
    and its GOENV file appeared: the causes are the capturing machine's."""
    home = tmp_path / "home"
    out = _annotated(tmp_path, goroot, home)
    assert out.read_bytes().count(b"GoFiles: ") >= 1
    copy = tmp_path / "edited.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(out), str(copy)], check=True, timeout=60)
    (goroot / "go.env").write_text("GOPROXY=https://changed.example\nGOSUMDB=off\n")
    (home / ".config" / "go").mkdir(parents=True)
    (home / ".config" / "go" / "env").write_text("GOPROXY=direct\n")
    report = analyze_files([copy], AnalyzeOptions(engine=engine))
    proxy = [c for c in report.contacts if c.host == "proxy.golang.org" and c.layer == "tls"]
    sumdb = [c for c in report.contacts if c.host == "sum.golang.org" and c.layer == "tls"]
    assert proxy and sumdb
    assert all((c.cause or "").startswith(
        "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default, recorded with "
        "the capture) -> ") for c in proxy), [c.cause for c in proxy]
    assert all((c.cause or "").startswith(
        "GOSUMDB=sum.golang.org from $GOROOT/go.env (default, recorded with the capture) -> "
        "checksum lookup") for c in sumdb), [c.cause for c in sumdb]


def test_the_files_go_where_the_environment_goes(tmp_path: Path, goroot: Path) -> None:
    """On each flow's first attributed packet, with the Env line; not on the thousands after."""
    data = _annotated(tmp_path, goroot, tmp_path / "home").read_bytes()
    assert data.count(b"GoFiles: ") == data.count(b"\nEnv: ") > 0
    assert data.count(b"PID: 30") > data.count(b"GoFiles: ")


def test_editor_capture_explained_where_its_goroot_is_unreadable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """captures/editor-vulncheck-prompt.pcapng (the lab's go was /usr/local/go/bin/go), analysed
    as on a machine without that GOROOT: the capture's copy of go.env still gives the cause."""
    real_read, real_is_file = Path.read_text, Path.is_file
    hidden = ("/usr/local/go", "/root/.config/go")

    def read_text(self: Path, *args: object, **kw: object) -> str:
        if str(self).startswith(hidden):
            raise FileNotFoundError(str(self))
        return real_read(self, *args, **kw)  # type: ignore[arg-type]

    def is_file(self: Path) -> bool:
        return False if str(self).startswith(hidden) else real_is_file(self)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(Path, "is_file", is_file)
    report = analyze_files([CAPTURES / "editor-vulncheck-prompt.pcapng"], AnalyzeOptions())
    proxy = [c for c in report.contacts if c.host == "proxy.golang.org" and c.layer == "tls"]
    assert proxy and all(c.process is not None and c.process.exe == "/usr/local/go/bin/go"
                         for c in proxy)
    assert all((c.cause or "").startswith(
        "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default, recorded with "
        "the capture) -> module download") for c in proxy), [c.cause for c in proxy]
    # the same process without the capture's copy: this machine's GOROOT is hidden, no cause
    assert all(process_config(replace(c.process, go_files=None)) is None  # type: ignore[arg-type]
               for c in proxy)
