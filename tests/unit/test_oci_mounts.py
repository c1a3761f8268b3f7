"""Mount list rules: defaults, sandbox files, overrides, ordering and propagation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.errors import InvalidArgument
from runtime.model.pods import Mount, Propagation
from runtime.oci.mounts import SandboxFiles, build_mounts, sandbox_mounts

DEFAULT_DESTS = [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
]


def dests(mounts: list[dict[str, Any]]) -> list[str]:
    return [m["destination"] for m in mounts]


def by_dest(mounts: list[dict[str, Any]], dest: str) -> dict[str, Any]:
    (found,) = [m for m in mounts if m["destination"] == dest]
    return found


def test_defaults_only() -> None:
    mounts, propagation = build_mounts((), ())
    assert dests(mounts) == DEFAULT_DESTS
    assert propagation == ""
    cg = by_dest(mounts, "/sys/fs/cgroup")
    assert cg["type"] == "cgroup"
    assert sorted(cg["options"]) == sorted(["ro", "nosuid", "noexec", "nodev", "relatime"])
    assert "ro" in by_dest(mounts, "/sys")["options"]
    assert by_dest(mounts, "/dev/shm")["type"] == "tmpfs"
    assert "size=65536k" in by_dest(mounts, "/dev/shm")["options"]


def test_privileged_sysfs_and_cgroup_are_writable() -> None:
    mounts, _ = build_mounts((), (), privileged=True)
    for dest in ("/sys", "/sys/fs/cgroup"):
        assert "rw" in by_dest(mounts, dest)["options"]
        assert "ro" not in by_dest(mounts, dest)["options"]


def test_sandbox_files(tmp_path: Path) -> None:
    files = SandboxFiles(
        hostname=tmp_path / "hostname",
        hosts=tmp_path / "hosts",
        resolv_conf=None,
        shm=tmp_path / "shm",
    )
    mounts, _ = build_mounts((), sandbox_mounts(files, readonly_rootfs=False))
    assert "/etc/resolv.conf" not in dests(mounts)
    shm = by_dest(mounts, "/dev/shm")  # the default tmpfs is replaced
    assert shm == {
        "destination": "/dev/shm",
        "type": "bind",
        "source": str(tmp_path / "shm"),
        "options": ["rbind", "rprivate", "rw"],
    }
    assert by_dest(mounts, "/etc/hosts")["options"] == ["rbind", "rprivate", "rw"]
    assert by_dest(mounts, "/etc/hostname")["source"] == str(tmp_path / "hostname")


def test_sandbox_files_readonly_with_readonly_rootfs_but_shm_writable(tmp_path: Path) -> None:
    files = SandboxFiles(resolv_conf=tmp_path / "r", shm=tmp_path / "shm")
    mounts, _ = build_mounts((), sandbox_mounts(files, readonly_rootfs=True))
    assert by_dest(mounts, "/etc/resolv.conf")["options"][-1] == "ro"
    assert by_dest(mounts, "/dev/shm")["options"][-1] == "rw"


def test_config_mount_beats_sandbox_file_and_default() -> None:
    extra = sandbox_mounts(SandboxFiles(hosts=Path("/sb/hosts")), readonly_rootfs=False)
    config = (
        Mount(container_path="/etc/hosts", host_path="/mine/hosts", readonly=True),
        Mount(container_path="/sys/", host_path="/host/sys"),
    )
    mounts, _ = build_mounts(config, extra)
    assert by_dest(mounts, "/etc/hosts")["source"] == "/mine/hosts"
    assert by_dest(mounts, "/etc/hosts")["options"] == ["rbind", "rprivate", "ro"]
    assert [m["type"] for m in mounts if m["destination"].rstrip("/") == "/sys"] == ["bind"]


def test_dev_mount_replaces_everything_under_dev() -> None:
    mounts, _ = build_mounts((Mount(container_path="/dev", host_path="/dev"),), ())
    assert dests(mounts) == ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]


def test_parents_before_children_stable() -> None:
    config = (
        Mount(container_path="/a/b/c", host_path="/h/abc"),
        Mount(container_path="/z", host_path="/h/z"),
        Mount(container_path="/a/b", host_path="/h/ab"),
        Mount(container_path="/a", host_path="/h/a"),
        Mount(container_path="/y", host_path="/h/y"),
    )
    mounts, _ = build_mounts(config, ())
    assert dests(mounts)[len(DEFAULT_DESTS) :] == ["/z", "/a", "/y", "/a/b", "/a/b/c"]


@pytest.mark.parametrize(
    ("propagations", "option", "rootfs"),
    [
        ((Propagation.PRIVATE,), "rprivate", ""),
        ((Propagation.HOST_TO_CONTAINER,), "rslave", "rslave"),
        ((Propagation.BIDIRECTIONAL,), "rshared", "rshared"),
        ((Propagation.BIDIRECTIONAL, Propagation.HOST_TO_CONTAINER), "rshared", "rshared"),
        ((Propagation.HOST_TO_CONTAINER, Propagation.BIDIRECTIONAL), "rslave", "rshared"),
    ],
)
def test_propagation(propagations: tuple[Propagation, ...], option: str, rootfs: str) -> None:
    config = tuple(
        Mount(container_path=f"/m{i}", host_path=f"/h{i}", propagation=p)
        for i, p in enumerate(propagations)
    )
    mounts, propagation = build_mounts(config, ())
    assert by_dest(mounts, "/m0")["options"] == ["rbind", option, "rw"]
    assert propagation == rootfs


@pytest.mark.parametrize(
    ("mount", "match"),
    [
        (Mount(container_path="/x", host_path="rel/path"), "host path 'rel/path' must be"),
        (Mount(container_path="x", host_path="/abs"), "container path 'x' must be"),
        (
            Mount(container_path="/x", host_path="/abs", readonly=True, recursive_read_only=True),
            "recursive read-only",
        ),
    ],
)
def test_invalid_mounts(mount: Mount, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        build_mounts((mount,), ())


RRO = Mount(container_path="/data", host_path="/srv/data", readonly=True, recursive_read_only=True)


def test_recursive_read_only_mount_uses_rro_where_supported() -> None:
    mounts, propagation = build_mounts((RRO,), (), recursive_read_only=True)
    (data,) = [m for m in mounts if m["destination"] == "/data"]
    assert data["options"] == ["rbind", "rprivate", "ro", "rro"]
    assert propagation == ""


def test_plain_read_only_bind_is_recursive_without_rro() -> None:
    plain = Mount(container_path="/data", host_path="/srv/data", readonly=True)
    mounts, _ = build_mounts((plain,), (), recursive_read_only=True)
    (data,) = [m for m in mounts if m["destination"] == "/data"]
    assert data["options"] == ["rbind", "rprivate", "ro"]


@pytest.mark.parametrize(
    ("mount", "supported", "match"),
    [
        (RRO, False, r"not supported by this runtime handler .*lists no rro"),
        (
            Mount(container_path="/d", host_path="/s", recursive_read_only=True),
            True,
            r"mount '/s' at '/d': recursive_read_only needs readonly: true",
        ),
        (
            Mount(
                container_path="/d",
                host_path="/s",
                readonly=True,
                recursive_read_only=True,
                propagation=Propagation.HOST_TO_CONTAINER,
            ),
            True,
            r"needs PROPAGATION_PRIVATE, not HOST_TO_CONTAINER",
        ),
        (
            Mount(
                container_path="/d",
                host_path="/s",
                readonly=True,
                recursive_read_only=True,
                propagation=Propagation.BIDIRECTIONAL,
            ),
            True,
            r"needs PROPAGATION_PRIVATE, not BIDIRECTIONAL",
        ),
    ],
)
def test_recursive_read_only_rules(mount: Mount, supported: bool, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        build_mounts((mount,), (), recursive_read_only=supported)
