"""Settings with a closed set of values are enums (DESIGN: state kept as strings is a habit to
avoid): the TOML string becomes the member, anything else is InvalidArgument naming the key
and the choices."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from cri.config import Config, SnapshotterChoice, from_mapping
from runtime.cgroups.mounts import CgroupDriver
from runtime.errors import InvalidArgument


def test_the_defaults_are_members() -> None:
    config = Config()
    assert config.images.snapshotter is SnapshotterChoice.OVERLAY
    assert config.runtime.cgroup_driver is CgroupDriver.CGROUPFS


@pytest.mark.parametrize("value", ["overlay", "native", "auto"])
def test_a_snapshotter_name_becomes_its_member(value: str) -> None:
    config = from_mapping({"images": {"snapshotter": value}})
    assert config.images.snapshotter is SnapshotterChoice(value)


def test_a_cgroup_driver_name_becomes_its_member() -> None:
    config = from_mapping({"runtime": {"cgroup_driver": "systemd"}})
    assert config.runtime.cgroup_driver is CgroupDriver.SYSTEMD


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"images": {"snapshotter": "zfs"}}, "images.snapshotter: 'zfs' must be overlay, native"),
        ({"images": {"snapshotter": 3}}, "images.snapshotter: 3 must be"),
        ({"runtime": {"cgroup_driver": "Systemd"}}, "runtime.cgroup_driver: 'Systemd' must be"),
    ],
)
def test_another_value_names_the_key_and_the_choices(data: dict, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        from_mapping(data)


def test_the_effective_config_shows_the_names() -> None:
    """Status verbose carries the config as JSON: the members render as their TOML names."""
    shown = json.loads(json.dumps(asdict(Config()), default=str))
    assert shown["images"]["snapshotter"] == "overlay"
    assert shown["runtime"]["cgroup_driver"] == "cgroupfs"
