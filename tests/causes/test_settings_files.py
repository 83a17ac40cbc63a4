"""VS Code settings (JSON with comments and trailing commas, per-platform locations, scope merging)
and saved configurations for `analyze --config-from`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.base.errors import ParseError, UsageError
from analyzer.causes import load_config_from
from analyzer.causes.jsonc import loads_jsonc
from analyzer.causes.vscode import load_editor_settings, user_settings_paths

from .conftest import base_env, go_env_w


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a": 1,}', {"a": 1}),
    ('{"a": [1, 2,],}', {"a": [1, 2]}),
    ('// head\n{"url": "https://x//y", /* c */ "b": "/* not a comment */"}',
     {"url": "https://x//y", "b": "/* not a comment */"}),
    ('{"q": "say \\"hi\\", // still text",}', {"q": 'say "hi", // still text'}),
    ('\ufeff{"bom": true}', {"bom": True}),
    ("", {}),
    ('{"a": 1, /* trailing */ }', {"a": 1}),
])
def test_jsonc(text: str, expected: object) -> None:
    assert loads_jsonc(text) == expected


@pytest.mark.parametrize(("text", "line"), [('{\n  "a": 1\n  "b": 2\n}', 3), ('{\n/* open', None)])
def test_jsonc_errors_name_the_line(text: str, line: int | None) -> None:
    with pytest.raises(ParseError) as err:
        loads_jsonc(text)
    if line is not None:
        assert f"line {line}" in str(err.value)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='{}[]",:/*\\ \nab1tfn', max_size=60))
def test_jsonc_hostile_input_raises_only_parse_error(text: str) -> None:
    try:
        loads_jsonc(text)
    except ParseError:
        pass


def test_valid_json_is_unchanged() -> None:
    data = {"go.toolsEnvVars": {"GOPROXY": "https://a,direct"}, "n": [1, {"x": None}], "s": "//*"}
    assert loads_jsonc(json.dumps(data, indent=2)) == data


def test_user_settings_locations() -> None:
    linux = user_settings_paths({"HOME": "/home/u"}, "linux")
    assert linux[0] == "/home/u/.config/Code/User/settings.json"
    assert "/home/u/.config/VSCodium/User/settings.json" in linux
    assert linux[-1] == "/home/u/.vscode-server/data/Machine/settings.json"
    assert user_settings_paths({"HOME": "/Users/u"}, "darwin")[0] == \
        "/Users/u/Library/Application Support/Code/User/settings.json"
    assert user_settings_paths({"APPDATA": r"C:\Users\u\AppData\Roaming"}, "win32")[0] == \
        r"C:\Users\u\AppData\Roaming\Code\User\settings.json"


def test_scopes_merge_object_settings_key_by_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    user = home / "Library" / "Application Support" / "Code" / "User"
    user.mkdir(parents=True)
    (user / "settings.json").write_text(
        '{"go.toolsEnvVars": {"GOPROXY": "direct", "GOFLAGS": "-x",}, // user\n'
        ' "gopls": {"build.env": {"GOPRIVATE": "corp.example"}}}')
    ws = tmp_path / "ws"
    (ws / ".vscode").mkdir(parents=True)
    (ws / ".vscode" / "settings.json").write_text('{"go": {"toolsEnvVars": {"GOPROXY": "off"}}}')
    (ws / "team.code-workspace").write_text(
        '{"folders": [{"path": "."}], "settings": {"go.toolsManagement.autoUpdate": true,},}')
    extra = tmp_path / "extra.json"
    extra.write_text('{"http.proxy": "http://127.0.0.1:3128",}')
    ed = load_editor_settings({"HOME": str(home)}, "darwin", ws, [extra])
    assert ed.tools_env["GOPROXY"].value == "off"                # workspace folder wins
    assert ed.tools_env["GOPROXY"].key == "go.toolsEnvVars"
    assert ed.tools_env["GOFLAGS"].value == "-x"                 # user key kept
    assert ed.gopls_env["GOPRIVATE"].key == "gopls.build.env"
    assert ed.scalars["go.toolsManagement.autoUpdate"].value is True
    assert ed.scalars["http.proxy"].file == str(extra)


def test_config_from_home_tree(home: Path, go_bin: str) -> None:
    env = base_env(home)
    go_env_w(go_bin, env, "GOPROXY=direct", "GONOSUMDB=vanity.lab")
    user = home / ".config" / "Code" / "User"
    user.mkdir(parents=True)
    (user / "settings.json").write_text('{"go.toolsManagement.checkForUpdates": "off",}')
    cfg = load_config_from(home, platform="linux")
    assert cfg.value("GOPROXY") == "direct"
    assert cfg.settings["GOPROXY"].source.startswith("GOENV file ")
    assert cfg.value("GONOSUMDB") == "vanity.lab"
    assert cfg.value("go.toolsManagement.checkForUpdates") == "off"


def test_config_from_env_file(tmp_path: Path) -> None:
    f = tmp_path / "child.env"
    f.write_text("# saved from the CI job\nexport GOPROXY='https://goproxy.cn,direct'\n"
                 'GOSUMDB="sum.golang.google.cn"\nGOFLAGS=-mod=mod\nnot a line\n')
    cfg = load_config_from(f, platform="linux")
    assert cfg.value("GOPROXY") == "https://goproxy.cn,direct"
    assert cfg.settings["GOSUMDB"].source == f"env file {f}"
    assert cfg.value("GOFLAGS") == "-mod=mod"


def test_config_from_bad_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("# nothing\n")
    with pytest.raises(UsageError, match="no KEY=VALUE lines"):
        load_config_from(empty)
    with pytest.raises(UsageError):
        load_config_from(tmp_path / "missing")
