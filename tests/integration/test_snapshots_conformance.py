"""Snapshotter conformance: one suite, run against overlay and native, mounting for real."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.errors import AlreadyExists, FailedPrecondition, NotFound
from runtime.mount import Mount, mount_all, unmount_all, unmount_below
from runtime.snapshots import Kind, NativeSnapshotter, OverlaySnapshotter, Snapshotter

pytestmark = pytest.mark.integration

Mounter = Callable[[list[Mount]], Path]


@pytest.fixture(params=["overlay", "native"])
def sn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Snapshotter]:
    cls = OverlaySnapshotter if request.param == "overlay" else NativeSnapshotter
    snapshotter = cls(tmp_path / "sn")
    yield snapshotter
    snapshotter.close()


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mounter]:
    """Mount a list of mounts on a fresh directory; everything is unmounted at teardown."""
    targets: list[Path] = []

    def do(mounts: list[Mount]) -> Path:
        target = tmp_path / f"mnt{len(targets)}"
        target.mkdir()
        targets.append(target)
        mount_all(mounts, target)
        return target

    yield do
    for target in reversed(targets):
        unmount_all(target, detach=True)


def umount(target: Path) -> None:
    unmount_all(target)


def test_lifecycle(sn: Snapshotter, mount: Mounter) -> None:
    assert isinstance(sn, Snapshotter)
    base = mount(sn.prepare("base-active", labels={"a": "1"}))
    (base / "keep").write_text("keep")
    (base / "gone").write_text("gone")
    (base / "dir").mkdir()
    (base / "dir/inner").write_text("inner")
    umount(base)
    assert sn.stat("base-active").kind is Kind.ACTIVE
    sn.commit("base", "base-active")
    with pytest.raises(NotFound):
        sn.stat("base-active")
    info = sn.stat("base")
    assert (info.kind, info.parent, dict(info.labels)) == (Kind.COMMITTED, "", {"a": "1"})
    assert sn.usage("base").inodes >= 4

    top = mount(sn.prepare("top-active", "base"))
    assert (top / "keep").read_text() == "keep"
    (top / "gone").unlink()
    (top / "dir/inner").unlink()
    (top / "new").write_text("new")
    umount(top)
    sn.commit("top", "top-active", labels={"b": "2"})
    assert sn.stat("top").parent == "base"
    assert dict(sn.stat("top").labels) == {"b": "2"}

    view = mount(sn.view("v", "top"))
    assert sorted(os.listdir(view)) == ["dir", "keep", "new"]
    assert os.listdir(view / "dir") == []
    with pytest.raises(OSError):
        (view / "x").write_text("read-only")
    umount(view)

    single = mount(sn.view("v1", "base"))
    assert sorted(os.listdir(single)) == ["dir", "gone", "keep"]
    umount(single)

    assert {i.key for i in sn.walk()} == {"base", "top", "v", "v1"}
    with pytest.raises(FailedPrecondition):
        sn.remove("base")  # has children
    for key in ("v", "v1", "top", "base"):
        sn.remove(key)
    assert list(sn.walk()) == []
    sn.flush()  # the data goes in the background (see test_removed_data_is_deleted)
    assert os.listdir(Path(sn.root) / "snapshots") == []  # type: ignore[attr-defined]


def test_removed_key_is_reusable_and_data_deleted(sn: Snapshotter) -> None:
    """The contract of remove: gone from the API and its key free at once; its data gone once
    the background deletion is flushed, and counted as pending until then."""
    snapshots = Path(sn.root) / "snapshots"  # type: ignore[attr-defined]
    sn.prepare("layer-active")
    (sn.layer_dir("layer-active") / "data").write_bytes(b"x" * 65536)
    sn.commit("layer", "layer-active")
    committed = sn.usage("layer")
    sn.prepare("c")
    sn.remove("c")
    sn.remove("layer")
    with pytest.raises(NotFound):
        sn.stat("layer")
    assert [i.key for i in sn.walk()] == []
    sn.prepare("c")  # the key is free again before the old data is deleted
    (sn.layer_dir("c") / "new").write_text("new")
    pending = sn.pending_removal()
    assert pending.size in (0, committed.size)  # 0 once the thread has got there
    sn.flush()
    assert sn.pending_removal().size == 0
    assert sorted(os.listdir(snapshots)) == [sn.layer_dir("c").parent.name]
    assert (sn.layer_dir("c") / "new").read_text() == "new"


def test_crash_with_trash_is_cleaned_at_start(sn: Snapshotter, tmp_path: Path) -> None:
    """A daemon killed after remove committed but before the data was deleted: the next
    instance's cleanup() deletes the trash and keeps the live snapshots."""
    snapshots = Path(sn.root) / "snapshots"  # type: ignore[attr-defined]
    sn.prepare("gone")
    (sn.layer_dir("gone") / "f").write_text("f")
    sn.prepare("kept")
    kept = sn.layer_dir("kept").parent.name
    sn.remove("gone")
    sn.flush()
    # what the killed daemon left: the row deleted, the directory renamed but not deleted
    (snapshots / ".removing-77/fs/sub").mkdir(parents=True)
    (snapshots / ".removing-77/fs/sub/f").write_text("f")
    sn.close()
    again = type(sn)(tmp_path / "sn")
    try:
        assert again.cleanup() == 1
        assert os.listdir(snapshots) == [kept]
        assert again.stat("kept").kind is Kind.ACTIVE
    finally:
        again.close()


def test_trash_never_deletes_through_a_mount(sn: Snapshotter, tmp_path: Path) -> None:
    """A bind mount left below a removed snapshot (a crash-left id-mapped volume is one) is
    detached before the tree is deleted: the files it shows survive."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    sn.prepare("a")
    point = sn.layer_dir("a") / "vol"
    point.mkdir()
    mount_all([Mount("bind", str(outside), ("rbind", "rw"))], point)
    try:
        sn.remove("a")
        sn.flush()
    finally:
        unmount_below(tmp_path)  # wherever the mount ended up if the test fails
    assert (outside / "precious").read_text() == "keep me"
    assert os.listdir(Path(sn.root) / "snapshots") == []  # type: ignore[attr-defined]


def test_errors(sn: Snapshotter) -> None:
    sn.prepare("a")
    with pytest.raises(AlreadyExists):
        sn.prepare("a")
    with pytest.raises(NotFound):
        sn.prepare("b", "missing")
    with pytest.raises(FailedPrecondition):
        sn.prepare("b", "a")  # an active snapshot cannot be a parent
    sn.commit("c", "a")
    with pytest.raises(AlreadyExists):
        sn.prepare("c")
    sn.view("v", "c")
    with pytest.raises(FailedPrecondition):
        sn.commit("v2", "v")  # views do not commit
    with pytest.raises(FailedPrecondition):
        sn.mounts("c")
    with pytest.raises(FailedPrecondition):
        sn.layer_dir("c")
    with pytest.raises(NotFound):
        sn.remove("nothing")
    with pytest.raises(NotFound):
        sn.stat("nothing")


def test_labels(sn: Snapshotter) -> None:
    sn.prepare("a", labels={"x": "1"})
    info = sn.update_labels("a", {"y": "2"})
    assert dict(info.labels) == {"y": "2"}
    assert dict(sn.stat("a").labels) == {"y": "2"}


def test_layer_dir_is_what_mounts_show(sn: Snapshotter, mount: Mounter) -> None:
    sn.prepare("l1-active")
    (sn.layer_dir("l1-active") / "from-layer").write_text("1")
    sn.commit("l1", "l1-active")
    sn.prepare("l2-active", "l1")
    layer = sn.layer_dir("l2-active")
    (layer / "second").write_text("2")
    target = mount(sn.mounts("l2-active"))
    assert sorted(os.listdir(target)) == ["from-layer", "second"]


def test_metadata_persists_across_instances(sn: Snapshotter, tmp_path: Path) -> None:
    sn.prepare("a")
    sn.commit("b", "a", labels={"k": "v"})
    sn.close()
    again = type(sn)(tmp_path / "sn")
    try:
        assert again.stat("b").kind is Kind.COMMITTED
        assert dict(again.stat("b").labels) == {"k": "v"}
    finally:
        again.close()


def test_cleanup_removes_leftovers_only(sn: Snapshotter) -> None:
    sn.prepare("a")
    snapshots = Path(sn.root) / "snapshots"  # type: ignore[attr-defined]
    (snapshots / "new-deadbeef/fs").mkdir(parents=True)
    (snapshots / ".removing-999/fs").mkdir(parents=True)
    (snapshots / "4242/fs").mkdir(parents=True)
    real = sn.layer_dir("a").parent
    # A removal whose transaction rolled back: the row survived, the directory was renamed.
    os.rename(real, snapshots / f".removing-{real.name}")
    assert sn.cleanup() == 3
    assert sorted(os.listdir(snapshots)) == [real.name]
    assert sn.layer_dir("a").is_dir()


def test_independent_layers(sn: Snapshotter, mount: Mounter) -> None:
    sn.prepare("l1-active")
    l1 = sn.layer_dir("l1-active")
    (l1 / "a").write_text("a")
    (l1 / "b").write_text("b")
    sn.commit("l1", "l1-active")
    sn.prepare("l2-active")  # no parent: unpacked independently
    l2 = sn.layer_dir("l2-active")
    if not sn.independent_layers:
        with pytest.raises(FailedPrecondition):
            sn.commit("l2", "l2-active", parent="l1")
        return
    os.mknod(l2 / "a", stat.S_IFCHR, os.makedev(0, 0))  # an overlay whiteout
    (l2 / "c").write_text("c")
    sn.commit("l2", "l2-active", parent="l1")
    assert sn.stat("l2").parent == "l1"
    view = mount(sn.view("v", "l2"))
    assert sorted(os.listdir(view)) == ["b", "c"]


def test_native_copy_preserves_metadata(tmp_path: Path) -> None:
    sn = NativeSnapshotter(tmp_path / "sn")
    try:
        sn.prepare("a")
        d = sn.layer_dir("a")
        (d / "f").write_text("data")
        os.chown(d / "f", 1234, 5678)
        os.chmod(d / "f", 0o4755)
        os.setxattr(d / "f", "user.k", b"v")
        os.setxattr(d / "f", "trusted.t", b"tv")
        os.link(d / "f", d / "hard")
        os.symlink("f", d / "sym")
        os.mknod(d / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mkfifo(d / "fifo")
        (d / "sub").mkdir()
        os.utime(d / "sub", ns=(1, 1_000_000_000_123))
        sn.commit("b", "a")
        sn.prepare("c", "b")
        c = sn.layer_dir("c")
        st = os.stat(c / "f")
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
        assert os.getxattr(c / "f", "user.k") == b"v"
        assert os.getxattr(c / "f", "trusted.t") == b"tv"
        assert os.stat(c / "hard").st_ino == st.st_ino != os.stat(d / "f").st_ino
        assert os.readlink(c / "sym") == "f"
        assert os.stat(c / "null").st_rdev == os.makedev(1, 3)
        assert stat.S_ISFIFO(os.stat(c / "fifo").st_mode)
        assert os.stat(c / "sub").st_mtime_ns == 1_000_000_000_123
    finally:
        sn.close()


def test_overlay_supported(tmp_path: Path) -> None:
    ok, reason = OverlaySnapshotter.supported(tmp_path / "probe")
    assert ok, reason
    assert os.listdir(tmp_path / "probe") == []
