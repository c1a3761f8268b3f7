"""CNI config loading: file order, wrapping single confs, skipping invalid files with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.network.conf import load_default, parse_conflist, parse_version

BRIDGE = {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}}


def _write(d: Path, name: str, value: object) -> None:
    (d / name).write_text(value if isinstance(value, str) else json.dumps(value))


def test_missing_or_empty_dir_gives_a_reason(tmp_path: Path) -> None:
    load = load_default(tmp_path / "nope")
    assert load.config is None and load.reason == f"no network config found in {tmp_path}/nope"
    assert load_default(tmp_path).config is None


def test_first_valid_file_by_name_wins(tmp_path: Path) -> None:
    _write(tmp_path, "05-broken.conflist", "{not json")
    _write(tmp_path, "07-noname.conf", {"cniVersion": "1.0.0", "type": "bridge"})
    _write(tmp_path, "08-noplugins.conflist", {"cniVersion": "1.0.0", "name": "x"})
    _write(
        tmp_path, "09-badversion.conflist", {"cniVersion": "1", "name": "x", "plugins": [BRIDGE]}
    )
    _write(tmp_path, "10-net.conflist", {"cniVersion": "1.0.0", "name": "a", "plugins": [BRIDGE]})
    _write(tmp_path, "20-other.conflist", {"cniVersion": "1.0.0", "name": "b", "plugins": [BRIDGE]})
    _write(tmp_path, "00-ignored.txt", {"cniVersion": "1.0.0", "name": "c", "plugins": [BRIDGE]})
    load = load_default(tmp_path)
    assert load.config is not None and load.config.name == "a"
    assert load.config.path == tmp_path / "10-net.conflist"
    reasons = {p.name: why for p, why in load.skipped}
    assert "invalid JSON" in reasons["05-broken.conflist"]
    assert "missing 'name'" in reasons["07-noname.conf"]
    assert "plugins" in reasons["08-noplugins.conflist"]
    assert "cniVersion" in reasons["09-badversion.conflist"]


def test_reason_lists_skipped_files_when_nothing_is_valid(tmp_path: Path) -> None:
    _write(tmp_path, "10-a.conf", {"name": "x", "type": "bridge"})
    load = load_default(tmp_path)
    assert load.config is None
    assert "10-a.conf: missing 'cniVersion'" in load.reason


def test_single_conf_is_wrapped_into_a_conflist(tmp_path: Path) -> None:
    _write(tmp_path, "10-single.json", {"cniVersion": "0.4.0", "name": "one", **BRIDGE})
    config = load_default(tmp_path).config
    assert config is not None
    assert [p.type for p in config.plugins] == ["bridge"]
    wrapped = json.loads(config.raw_bytes)
    assert wrapped["name"] == "one" and wrapped["plugins"][0]["bridge"] == "cni0"
    assert parse_conflist(config.raw_bytes).plugins == config.plugins


def test_plugin_capabilities_and_flags() -> None:
    raw = json.dumps(
        {
            "cniVersion": "1.1.0",
            "name": "n",
            "disableCheck": True,
            "plugins": [{"type": "portmap", "capabilities": {"portMappings": True, "x": False}}],
        }
    ).encode()
    config = parse_conflist(raw)
    assert config.plugins[0].capabilities == frozenset({"portMappings"})
    assert config.disable_check and not config.disable_gc and config.version == (1, 1, 0)


@pytest.mark.parametrize("bad", [{"type": "../evil"}, {"type": ""}, "str"])
def test_bad_plugin_entries_are_rejected(bad: object) -> None:
    raw = json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [bad]}).encode()
    with pytest.raises(InvalidArgument):
        parse_conflist(raw)


def test_parse_version() -> None:
    assert parse_version("0.3.1") < parse_version("0.4.0") < parse_version("1.0.0")
    with pytest.raises(InvalidArgument):
        parse_version("v1")
