"""Device entries and cgroup rules from real host device nodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.model.pods import Device
from runtime.oci import devices

NULL = os.stat("/dev/null")


def test_dev_null() -> None:
    entries, rules = devices.config_devices(
        (Device(container_path="/dev/mynull", host_path="/dev/null", permissions="rw"),)
    )
    assert entries == [
        {
            "path": "/dev/mynull",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": NULL.st_mode & 0o7777,
            "uid": NULL.st_uid,
            "gid": NULL.st_gid,
        }
    ]
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]


def test_symlinked_device_is_followed(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/dev/zero")
    entries, rules = devices.config_devices(
        (Device(container_path="/dev/z", host_path=str(tmp_path / "link")),)
    )
    assert (entries[0]["major"], entries[0]["minor"]) == (1, 5)
    assert rules[0]["access"] == "rwm"


def test_directory_gives_every_device_below(tmp_path: Path) -> None:
    d = tmp_path / "devs"
    (d / "sub").mkdir(parents=True)
    (d / "n").symlink_to("/dev/null")  # symlinks inside a directory are skipped (containerd)
    (d / "file").write_text("not a device")
    entries, _ = devices.config_devices((Device(container_path="/dev/x", host_path=str(d)),))
    assert entries == []


@pytest.mark.parametrize(
    ("device", "match"),
    [
        (Device(container_path="/dev/nope", host_path="/dev/no-such-device"), "no-such-device"),
        (Device(container_path="/dev/x", host_path="/etc/hostname"), "not a device"),
        (Device(container_path="/dev/x", host_path="dev/null"), "absolute"),
        (Device(container_path="/dev/x", host_path="/dev/null", permissions="rwx"), "'rwm'"),
        (Device(container_path="/dev/x", host_path="/dev/null", permissions="rr"), "'rwm'"),
    ],
)
def test_invalid(device: Device, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        devices.config_devices((device,))


def test_host_devices_include_null_and_skip_pts() -> None:
    found = {d["path"]: d for d in devices.host_devices()}
    assert (found["/dev/null"]["major"], found["/dev/null"]["minor"]) == (1, 3)
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in found)
    assert "/dev/console" not in found
