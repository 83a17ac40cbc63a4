"""A real LSP client for gopls over stdio (pygls's LanguageClient), and the editor driver.

``python -m tests.lab.lsp SPEC.json OUT.json`` plays the editor inside the lab's client
namespace: it starts gopls with its own environment (the "shell" the editor was started from),
initializes, answers ``workspace/configuration`` with the spec's ``gopls`` settings, opens files,
waits for diagnostics, runs commands and code actions, and writes what gopls said (diagnostics,
messages, progress, command results) to OUT.json. Every wait is bounded; gopls and whatever it
started are stopped by pid in a ``finally``.

SPEC: {"gopls": [argv...], "root": DIR, "settings": {...}, "timeout": S,
       "steps": [{"open": "main.go"} | {"settle": S} | {"diagnostics": "go.mod", "timeout": S}
                 | {"command": NAME, "arguments": [...], "timeout": S}
                 | {"code_actions": "go.mod", "kind": "quickfix", "run_titled": PREFIX}]}
File names in steps are relative to root; "$ROOT_URI/..." in command arguments becomes a file URI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

CLIENT_NAME = "proxytrace-lab-editor"


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc's ppid fields), deepest last."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # comm may hold spaces and parentheses: the fields after the last ')' are fixed.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and its descendants, by pid (children first found, then the root)."""
    killed = []
    for target in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
            killed.append(target)
    return killed


class Transcript:
    """What the server said, in arrival order, with times (seconds since the session started)."""

    def __init__(self) -> None:
        self.start = time.time()
        self.events: list[dict[str, Any]] = []
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.last_message = time.monotonic()
        self.changed = asyncio.Event()

    def add(self, kind: str, payload: Any) -> None:
        self.events.append({"t": round(time.time() - self.start, 3), "kind": kind, "payload": payload})
        self.last_message = time.monotonic()
        self.changed.set()


def _plain(converter: Any, obj: Any) -> Any:
    return converter.unstructure(obj) if obj is not None else None


class GoplsSession:
    def __init__(self, argv: list[str], root: Path, settings: dict[str, Any]) -> None:
        self.argv = argv
        self.root = root
        self.settings = settings
        self.client = LanguageClient(CLIENT_NAME, "1")
        self.log = Transcript()
        self.pid: int | None = None
        self._register()

    def uri(self, rel: str) -> str:
        return (self.root / rel).as_uri()

    def _register(self) -> None:
        client, log = self.client, self.log
        conv = client.protocol._converter

        @client.feature(types.WORKSPACE_CONFIGURATION)
        def configuration(params: types.ConfigurationParams) -> list[Any]:
            # The editor's settings: the "gopls" section, as VS Code's "gopls": {...} setting.
            answer = [self.settings if item.section == "gopls" else None for item in params.items]
            log.add("workspace/configuration", {"items": [i.section for i in params.items],
                                                "answer": answer})
            return answer

        @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def diagnostics(params: types.PublishDiagnosticsParams) -> None:
            diags = [_plain(conv, d) for d in params.diagnostics]
            log.diagnostics[params.uri] = diags
            log.add("diagnostics", {"uri": params.uri, "diagnostics": diags})

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params: types.ShowMessageParams) -> None:
            log.add("showMessage", {"type": int(params.type), "message": params.message})

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params: types.LogMessageParams) -> None:
            log.add("logMessage", {"type": int(params.type), "message": params.message[:2000]})

        @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
        def ask(params: types.ShowMessageRequestParams) -> None:
            # The editor user dismisses prompts (gopls's vulncheck prompt included): no answer
            # picks no action, as closing the notification does.
            log.add("showMessageRequest", {"message": params.message,
                                           "actions": [a.title for a in params.actions or []]})
            return None

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def progress_create(params: types.WorkDoneProgressCreateParams) -> None:
            log.add("progress/create", {"token": params.token})

        @client.feature(types.PROGRESS)
        def progress(params: types.ProgressParams) -> None:
            log.add("progress", {"token": params.token, "value": params.value})

        @client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def register(params: types.RegistrationParams) -> None:
            log.add("registerCapability", {"methods": [r.method for r in params.registrations]})

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            applied = self._apply(params.edit)
            log.add("applyEdit", {"label": params.label, "files": applied})
            return types.ApplyWorkspaceEditResult(applied=True)

    def _apply(self, edit: types.WorkspaceEdit) -> list[str]:
        """Write a workspace edit to disk, as an editor saving the files would."""
        files = []
        for change in edit.document_changes or []:
            if not isinstance(change, types.TextDocumentEdit):
                continue
            path = Path(change.text_document.uri.removeprefix("file://"))
            text = path.read_text() if path.exists() else ""
            for e in sorted(change.edits, key=lambda e: (e.range.start.line, e.range.start.character),
                            reverse=True):
                text = _splice(text, e.range, e.new_text)
            path.write_text(text)
            files.append(path.name)
        return files

    async def start(self, timeout: float) -> None:
        # A new session: gopls and its children form a group of their own.
        await self.client.start_io(self.argv[0], *self.argv[1:], cwd=str(self.root),
                                   start_new_session=True)
        assert self.client._server is not None
        self.pid = self.client._server.pid
        caps = types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(
                configuration=True, apply_edit=True, workspace_folders=True,
                did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                    dynamic_registration=True)),
            text_document=types.TextDocumentClientCapabilities(
                publish_diagnostics=types.PublishDiagnosticsClientCapabilities(),
                code_action=types.CodeActionClientCapabilities(
                    code_action_literal_support=types.ClientCodeActionLiteralOptions(
                        code_action_kind=types.ClientCodeActionKindOptions(
                            value_set=[k.value for k in types.CodeActionKind])))),
            window=types.WindowClientCapabilities(work_done_progress=True,
                                                  show_message=types.ShowMessageRequestClientCapabilities()))
        params = types.InitializeParams(
            process_id=os.getpid(), root_uri=self.root.as_uri(), capabilities=caps,
            client_info=types.ClientInfo(name=CLIENT_NAME, version="1"),
            workspace_folders=[types.WorkspaceFolder(uri=self.root.as_uri(), name=self.root.name)])
        result = await asyncio.wait_for(self.client.initialize_async(params), timeout)
        self.log.add("initialized", {"server": _plain(self.client.protocol._converter,
                                                      result.server_info)})
        self.client.initialized(types.InitializedParams())

    def open(self, rel: str) -> None:
        path = self.root / rel
        language = {"go.mod": "go.mod", "go.sum": "go.sum"}.get(path.name, "go")
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=path.as_uri(), language_id=language, version=1,
                                                 text=path.read_text())))
        self.log.add("didOpen", {"uri": path.as_uri()})

    async def settle(self, quiet: float, timeout: float) -> bool:
        """Wait until the server has said nothing for ``quiet`` seconds (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = time.monotonic() - self.log.last_message
            if idle >= quiet:
                return True
            await asyncio.sleep(min(quiet - idle, deadline - time.monotonic(), 0.5))
        return False

    async def wait_diagnostics(self, rel: str, timeout: float) -> bool:
        uri = self.uri(rel)
        deadline = time.monotonic() + timeout
        while uri not in self.log.diagnostics:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.log.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.log.changed.wait(), left)
        return True

    async def command(self, name: str, arguments: list[Any], timeout: float) -> Any:
        args = json.loads(json.dumps(arguments).replace("$ROOT_URI", self.root.as_uri()))
        result = await asyncio.wait_for(self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=args)), timeout)
        out = _plain(self.client.protocol._converter, result)
        self.log.add("command", {"command": name, "arguments": args, "result": out})
        return out

    async def code_actions(self, rel: str, kind: str | None, run_titled: str | None,
                           timeout: float) -> list[str]:
        uri = self.uri(rel)
        diags = self.log.diagnostics.get(uri, [])
        conv = self.client.protocol._converter
        end = len((self.root / rel).read_text().splitlines())
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=0, character=0),
                              end=types.Position(line=end, character=0)),
            context=types.CodeActionContext(
                diagnostics=[conv.structure(d, types.Diagnostic) for d in diags],
                only=[kind] if kind else None))
        actions = await asyncio.wait_for(self.client.text_document_code_action_async(params), timeout)
        titles = [a.title for a in actions or []]
        self.log.add("codeActions", {"uri": uri, "titles": titles})
        for action in actions or []:
            if run_titled and action.title.startswith(run_titled):
                cmd = action.command if isinstance(action, types.CodeAction) else action
                if isinstance(cmd, types.Command):
                    await self.command(cmd.command, list(cmd.arguments or []), timeout)
                break
        return titles

    async def stop(self, timeout: float) -> dict[str, Any]:
        """shutdown + exit, bounded; then every process of the tree is killed by pid."""
        out: dict[str, Any] = {"clean": False}
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_async(None), timeout)
            self.client.exit(None)
            out["clean"] = True
        server = self.client._server
        if server is not None:
            with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
                await asyncio.wait_for(server.wait(), timeout)
        if self.pid is not None:
            out["killed"] = kill_tree(self.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.stop(), timeout)
        return out


def _splice(text: str, rng: types.Range, new: str) -> str:
    lines = text.splitlines(keepends=True)

    def offset(pos: types.Position) -> int:
        return sum(len(line) for line in lines[:pos.line]) + pos.character

    return text[:offset(rng.start)] + new + text[offset(rng.end):]


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    root = Path(spec["root"])
    session = GoplsSession(spec["gopls"], root, spec.get("settings", {}))
    result: dict[str, Any] = {"ok": False, "steps": []}
    default = float(spec.get("timeout", 60))
    try:
        await session.start(default)
        result["gopls_pid"] = session.pid
        for step in spec["steps"]:
            t = float(step.get("timeout", default))
            if "open" in step:
                session.open(step["open"])
                done: Any = True
            elif "settle" in step:
                done = await session.settle(float(step["settle"]), t)
            elif "diagnostics" in step:
                done = await session.wait_diagnostics(step["diagnostics"], t)
            elif "command" in step:
                done = await session.command(step["command"], step.get("arguments", []), t)
            elif "code_actions" in step:
                done = await session.code_actions(step["code_actions"], step.get("kind"),
                                                  step.get("run_titled"), t)
            else:
                raise ValueError(f"unknown step {step}")
            result["steps"].append({"step": step, "result": done})
        result["ok"] = True
    except Exception as exc:  # the transcript says what failed; the caller decides
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        result["stop"] = await session.stop(10)
        result["events"] = session.log.events
        result["diagnostics"] = session.log.diagnostics
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result = asyncio.run(asyncio.wait_for(drive(spec), float(spec.get("deadline", 300))))
    Path(argv[1]).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
