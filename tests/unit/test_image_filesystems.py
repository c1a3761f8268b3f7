"""ImageFsInfo's filesystems: one when content and snapshots share a device, the containers'
filesystem beside it when the snapshotter's root is on another (here: tmpfs /dev/shm)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from runtime.images.service import measure_filesystems


def _fill(top: Path, files: int) -> None:
    top.mkdir(parents=True)
    for n in range(files):
        (top / f"f{n}").write_bytes(b"z" * 4096)


def test_one_filesystem_adds_blobs_layers_and_writable_layers(tmp_path: Path) -> None:
    _fill(tmp_path / "content", 3)
    (tmp_path / "snapshots").mkdir()
    found = measure_filesystems(
        content_dir=tmp_path / "content",
        fs_id=str(tmp_path / "snapshots"),
        layers=(100_000, 50),
        writable=(20_000, 7),
    )
    assert found.containers is None
    assert found.image.mountpoint == str(tmp_path / "snapshots")
    assert found.image.inodes_used == 4 + 50 + 7  # the blobs and content/ itself
    assert found.image.used_bytes >= 3 * 4096 + 120_000


def test_snapshots_on_another_device_are_the_containers_filesystem(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a device of its own")
    _fill(tmp_path / "content", 3)
    with tempfile.TemporaryDirectory(dir=shm) as other:
        found = measure_filesystems(
            content_dir=tmp_path / "content", fs_id=other, layers=(10, 1), writable=(20_000, 7)
        )
    assert found.image.mountpoint == str(tmp_path / "content")
    assert found.image.inodes_used == 4 + 1
    assert found.containers is not None
    assert found.containers.mountpoint == other
    assert (found.containers.used_bytes, found.containers.inodes_used) == (20_000, 7)
