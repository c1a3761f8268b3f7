"""mount(2)/umount2(2) through runtime.mount, on temporary directories."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.mount import Mount, bind, is_mountpoint, mount_all, parse_options, unmount, unmount_all
from runtime.mount.types import MS_BIND, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC

pytestmark = pytest.mark.integration


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    t = tmp_path / "target"
    t.mkdir()
    yield t
    unmount_all(t, detach=True)


def test_parse_options() -> None:
    opts = parse_options(("rbind", "ro", "nosuid", "rprivate", "size=1m", "mode=755"))
    assert opts.flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert opts.propagation == MS_PRIVATE | MS_REC
    assert opts.data == "size=1m,mode=755"
    assert not parse_options(("ro", "rw")).readonly


def test_tmpfs_with_data_and_stacking(target: Path) -> None:
    mount_all([Mount("tmpfs", "tmpfs", ("size=1m", "nosuid"))], target)
    assert is_mountpoint(target)
    (target / "one").write_text("1")
    mount_all([Mount("tmpfs", "tmpfs", ("size=1m",))], target)
    assert not (target / "one").exists()  # hidden by the second mount
    assert unmount_all(target) == 2
    assert not is_mountpoint(target)


def test_readonly_bind(tmp_path: Path, target: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("hi")
    bind(src, target, readonly=True, propagation="rprivate")
    assert (target / "f").read_text() == "hi"
    with pytest.raises(OSError) as info:
        (target / "g").write_text("no")
    assert info.value.errno == errno.EROFS
    assert unmount(target)
    assert not is_mountpoint(target)


def test_unmount_missing(target: Path) -> None:
    assert unmount(target, missing_ok=True) is False
    with pytest.raises(OSError):
        unmount(target)
    assert unmount_all(target) == 0


def test_failed_mount_leaves_nothing(tmp_path: Path, target: Path) -> None:
    with pytest.raises(OSError):
        mount_all(
            [Mount("tmpfs", "tmpfs", ()), Mount("bind", str(tmp_path / "missing"), ("rbind",))],
            target,
        )
    assert not is_mountpoint(target)


def test_overlay_with_options_longer_than_a_page(tmp_path: Path, target: Path) -> None:
    base = tmp_path / ("long-directory-name-" * 4)
    lowers = []
    for i in range(60):
        d = base / f"layer-{i:03d}" / "fs"
        d.mkdir(parents=True)
        (d / f"file{i}").write_text(str(i))
        lowers.append(str(d))
    (base / "upper").mkdir()
    (base / "work").mkdir()
    m = Mount(
        "overlay",
        "overlay",
        ("index=off", f"lowerdir={':'.join(lowers)}", f"upperdir={base / 'upper'}",
         f"workdir={base / 'work'}"),
    )  # fmt: skip
    assert len(m.parsed().data) > 4096
    cwd = os.getcwd()
    mount_all([m], target)
    assert os.getcwd() == cwd  # the chdir happened on a throwaway thread only
    assert len(os.listdir(target)) == 60
    assert (target / "file59").read_text() == "59"
    unmount(target)


def test_overlay_options_too_long_even_relative(tmp_path: Path, target: Path) -> None:
    lowers = ":".join(str(tmp_path / f"{i}-{'x' * 200}") for i in range(40))
    with pytest.raises(InvalidArgument, match="too many layers"):
        mount_all([Mount("overlay", "overlay", (f"lowerdir={lowers}",))], target)
