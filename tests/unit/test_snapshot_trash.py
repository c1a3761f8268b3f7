"""runtime.snapshots.trash.Trash: background deletion of removed snapshots' directories, with a
deleter that the test holds and releases (no timers)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from runtime.snapshots.interfaces import Usage
from runtime.snapshots.native import NativeSnapshotter
from runtime.snapshots.trash import SMALL_TREE, Trash, delete_trees


class HeldDeleter:
    """Records the batches it is given; each waits until the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[Path]] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.fail = False

    def __call__(self, paths: list[Path]) -> None:
        self.started.release()
        self.release.wait()
        self.batches.append(list(paths))
        if self.fail:
            raise OSError("disk on fire")


def test_pending_counts_until_deleted_and_flush_waits() -> None:
    deleter = HeldDeleter()
    trash = Trash(delete=deleter)
    trash.put(Path("/x/.removing-1"), Usage(size=4096, inodes=3))
    assert deleter.started.acquire(timeout=10)  # the thread holds batch 1
    trash.put(Path("/x/.removing-2"), Usage(size=100, inodes=1))
    assert trash.pending() == Usage(size=4196, inodes=4)
    flushed = threading.Event()
    waiter = threading.Thread(target=lambda: (trash.flush(), flushed.set()))
    waiter.start()
    assert not flushed.is_set()
    deleter.release.set()
    waiter.join(timeout=10)
    assert flushed.is_set()
    assert trash.pending() == Usage(size=0, inodes=0)
    assert [p.name for batch in deleter.batches for p in batch] == [".removing-1", ".removing-2"]
    trash.close()


def test_a_failing_batch_does_not_stop_the_thread() -> None:
    deleter = HeldDeleter()
    deleter.release.set()
    deleter.fail = True
    trash = Trash(delete=deleter)
    trash.put(Path("/x/a"), Usage(size=1, inodes=1))
    trash.flush()
    deleter.fail = False
    trash.put(Path("/x/b"), Usage(size=1, inodes=1))
    trash.flush()
    assert [p.name for batch in deleter.batches for p in batch] == ["a", "b"]
    assert trash.pending() == Usage(size=0, inodes=0)
    trash.close()


def test_close_deletes_what_waits_and_later_puts_delete_in_the_caller(tmp_path: Path) -> None:
    trash = Trash()
    for name in ("a", "b"):
        (tmp_path / name / "fs").mkdir(parents=True)
        trash.put(tmp_path / name, Usage(size=0, inodes=1))
    trash.close()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "c").mkdir()
    trash.put(tmp_path / "c", Usage(size=0, inodes=1))
    assert list(tmp_path.iterdir()) == []
    trash.flush()  # nothing waits: returns


@pytest.mark.parametrize("files", [None, 3, SMALL_TREE * 2])
def test_delete_trees_small_in_thread_big_by_rm_missing_fine(
    tmp_path: Path, files: int | None
) -> None:
    """A missing tree, a small one (deleted in the thread) and a big one (by ``rm``): gone."""
    target = tmp_path / "t"
    if files is not None:
        (target / "d").mkdir(parents=True)
        for n in range(files):
            (target / "d" / str(n)).write_text("f")
    delete_trees([target, tmp_path / "also-missing"])
    assert list(tmp_path.iterdir()) == []


def test_a_removed_layer_counts_as_pending_until_deleted(tmp_path: Path) -> None:
    """What ImageFsInfo adds to the committed layers: a removed image layer, by its size at
    commit, while its directory waits; nothing once it is deleted. Its key is free at once."""
    deleter = HeldDeleter()
    sn = NativeSnapshotter(tmp_path / "sn", trash=Trash(delete=deleter))
    try:
        sn.prepare("a")
        (sn.layer_dir("a") / "data").write_bytes(b"x" * 65536)
        sn.commit("layer", "a")
        size = sn.usage("layer")
        sn.remove("layer")
        assert deleter.started.acquire(timeout=10)
        assert sn.pending_removal() == size
        sn.prepare("layer")  # the key is reusable while the old data waits
        doomed = [p.name for p in (tmp_path / "sn/snapshots").iterdir()]
        assert len([n for n in doomed if n.startswith(".removing-")]) == 1
        deleter.release.set()
        sn.flush()
        assert sn.pending_removal() == Usage(size=0, inodes=0)
    finally:
        deleter.release.set()
        sn.close()
