"""runtime/tasks/runc_state.py: when runc's state allows pinnace to act in its place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.tasks import runc_state


def _state(**config: Any) -> dict[str, Any]:
    base_config: dict[str, Any] = {
        "Hooks": {"poststart": None, "poststop": None, "prestart": None},
        "namespaces": [{"type": "NEWPID", "path": ""}, {"type": "NEWNS", "path": ""}],
        "cgroups": {"path": "/p/c", "Systemd": False, "Rootless": False},
    }
    base_config.update(config)
    return {
        "config": base_config,
        "cgroup_paths": {"memory": "/sys/fs/cgroup/memory/p/c", "": "/sys/fs/cgroup/unified/p/c"},
        "intel_rdt_path": "",
        "rootless": False,
    }


def _write(root: Path, raw: object) -> runc_state.RuncState | None:
    (root / "c").mkdir()
    (root / "c" / "state.json").write_text(json.dumps(raw))
    return runc_state.read_state(root, "c")


def test_a_plain_container_may_be_started_and_deleted_without_runc(tmp_path: Path) -> None:
    state = _write(tmp_path, _state())
    assert state is not None and state.startable and state.deletable
    assert sorted(state.cgroup_paths) == [
        "/sys/fs/cgroup/memory/p/c",
        "/sys/fs/cgroup/unified/p/c",
    ]
    assert state.directory == tmp_path / "c"


@pytest.mark.parametrize(
    ("config", "startable"),
    [
        ({"Hooks": {"poststop": [{"path": "/bin/true"}]}}, False),
        ({"Hooks": {"poststart": [{"path": "/bin/true"}]}}, False),
        ({"namespaces": [{"type": "NEWPID", "path": "/proc/1/ns/pid"}]}, True),
        ({"namespaces": [{"type": "NEWNS", "path": ""}]}, True),
        ({"cgroups": {"Systemd": True}}, True),
        ({"cgroups": {"Rootless": True}}, True),
        ({"intel_rdt": {"closID": "x"}}, True),
    ],
)
def test_anything_runc_would_do_more_leaves_delete_to_runc(
    tmp_path: Path, config: dict[str, Any], startable: bool
) -> None:
    state = _write(tmp_path, _state(**config))
    assert state is not None
    assert not state.deletable
    assert state.startable is startable


@pytest.mark.parametrize(
    "raw",
    [{"status": "created"}, [], {"config": "x", "cgroup_paths": {}}, {"config": {}}],
)
def test_not_runcs_format_is_none(tmp_path: Path, raw: object) -> None:
    assert _write(tmp_path, raw) is None


def test_no_state_is_none(tmp_path: Path) -> None:
    assert runc_state.read_state(tmp_path, "missing") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "state.json").write_text("{not json")
    assert runc_state.read_state(tmp_path, "bad") is None


def test_destroy_removes_nested_dirs_and_the_state_directory(tmp_path: Path) -> None:
    # plain directories stand in for cgroups: rmdir semantics are the same for empty ones
    cg = tmp_path / "cg" / "c"
    (cg / "child" / "grandchild").mkdir(parents=True)
    (tmp_path / "root" / "c").mkdir(parents=True)
    (tmp_path / "root" / "c" / "state.json").write_text("{}")
    state = runc_state.RuncState(
        directory=tmp_path / "root" / "c",
        cgroup_paths=(str(cg), str(tmp_path / "cg" / "gone")),
        has_hooks=False,
        own_pid_namespace=True,
        systemd_cgroups=False,
        rootless=False,
        intel_rdt=False,
    )
    assert runc_state.destroy(state) == []
    assert not cg.exists() and not state.directory.exists()
