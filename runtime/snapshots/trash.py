"""Deleting removed snapshots' directories off the caller's path (containerd's overlay
snapshotter with ``AsyncRemove``).

A snapshotter's ``remove`` drops the row and renames the directory to ``.removing-<id>`` in one
transaction (a rename within the ``snapshots`` directory: one file system, atomic, cheap), then
hands the renamed directory to :class:`Trash`. One background thread deletes what it is given,
in order. Nothing is lost by a crash: whatever is still named ``.removing-<id>`` without a row
is deleted by the snapshotter's ``cleanup()`` at the next start.

Before a tree is deleted, everything mounted at or below it is detached (``rm -rf`` does not
stop at a bind mount of the same file system; through a read-write one it would delete the
host's files). The mount table is read once per batch, not once per directory. The deleting is
one ``rm -rf`` per batch in a child process at ``SCHED_IDLE``, not a Python ``rmtree``: on a
two-core node a Python thread unlinking thousands of files contends for the GIL with the event
loop around every system call and slowed the RPCs after it as much as the removal had cost
(measured with ``benchmarks.bench_lifecycle --writes 3000``), while a child costs one
``posix_spawn`` per batch. Trees of at most :data:`SMALL_TREE` entries, which is most
containers' writable layer, are deleted in the thread: that is cheaper than starting ``rm``.

:meth:`Trash.pending` says what is still on disk: the bytes and inodes of the committed
snapshots (image layers) waiting, as measured at their commit. A view's or an active
snapshot's size was never measured by the snapshotter (a container's writable layer is
accounted by ``runtime.stats.layers`` while the container exists), and walking it here would
cost what deleting it costs, so those count as 0 bytes and 1 inode each until they are gone.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from runtime import mount as mounts
from runtime.snapshots.interfaces import Usage

log = logging.getLogger(__name__)

# A tree this small (a container that wrote little: fs/, work/work/) is deleted in the thread:
# fewer system calls than starting ``rm``. A bigger one goes to ``rm``.
SMALL_TREE = 64


def delete_trees(paths: list[Path]) -> None:
    """Detach whatever is mounted at or below each of ``paths``, then delete them. Blocking."""
    try:
        points = mounts.mountpoints()
    except OSError:
        points = []
    safe: list[Path] = []
    for path in paths:
        prefix = os.path.realpath(path).rstrip("/") + "/"
        if any(p == prefix[:-1] or p.startswith(prefix) for p in points):
            try:
                mounts.unmount_below(path)
            except OSError as exc:
                # a mount that cannot be detached must not be walked into: keep the tree for
                # the next start's cleanup (which tries again) rather than delete through it
                log.warning("not deleting %s: detaching the mounts below failed: %s", path, exc)
                continue
        safe.append(path)
    big = [path for path in safe if not _small(path)]
    for path in safe:
        if path not in big:
            shutil.rmtree(path, ignore_errors=True)
    if big:
        _remove(big)


def _small(path: Path, budget: int = SMALL_TREE) -> bool:
    """Whether the tree at ``path`` has at most ``budget`` entries (stops counting beyond)."""
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    budget -= 1
                    if budget < 0:
                        return False
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return True


def _remove(paths: list[Path]) -> None:
    """One ``rm -rf`` in a child at ``SCHED_IDLE``: the deleting competes neither for the
    daemon's GIL (a Python ``rmtree`` in a thread would, around every unlink) nor for CPU with
    anything that wants it. ``shutil.rmtree`` where there is no ``rm`` or it failed."""
    rm = shutil.which("rm", path="/usr/bin:/bin")
    if rm is not None:
        try:
            pid = os.posix_spawn(
                rm,
                [rm, "-rf", "--one-file-system", "--", *map(str, paths)],
                {"LC_ALL": "C"},
                scheduler=(os.SCHED_IDLE, os.sched_param(0)),
            )
        except OSError as exc:
            log.debug("rm could not be run (%s); deleting in this thread", exc)
        else:
            os.waitpid(pid, 0)
    for path in paths:
        if os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True)


class Trash:
    """Removed snapshots' directories, deleted by one background thread (see the module
    docstring). Thread-safe; the thread starts with the first :meth:`put`. ``delete`` is what
    deletes a batch (:func:`delete_trees` on a host)."""

    def __init__(self, *, delete: Callable[[list[Path]], None] = delete_trees) -> None:
        self._delete = delete
        self._cond = threading.Condition()
        self._queue: deque[tuple[Path, Usage]] = deque()
        self._busy: list[tuple[Path, Usage]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def put(self, path: Path, usage: Usage) -> None:
        """Delete ``path`` (already renamed out of the way) soon; ``usage`` is what it holds,
        as far as the caller knows."""
        with self._cond:
            if self._closed:
                # after close() nothing deletes in the background: do it here
                self._delete([path])
                return
            self._queue.append((path, usage))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pinnace-snapshot-trash", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def pending(self) -> Usage:
        """Bytes and inodes still waiting to be deleted (see the module docstring)."""
        with self._cond:
            waiting = [*self._busy, *self._queue]
        return Usage(size=sum(u.size for _, u in waiting), inodes=sum(u.inodes for _, u in waiting))

    def flush(self) -> None:
        """Wait until everything put so far is deleted."""
        with self._cond:
            self._cond.wait_for(lambda: not self._queue and not self._busy)

    def close(self) -> None:
        """Delete what is waiting, then stop the thread (a later :meth:`put` deletes in the
        caller)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._cond:
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                self._busy = list(self._queue)
                self._queue.clear()
            try:
                self._delete([path for path, _ in self._busy])
            except Exception:  # never kill the thread; cleanup() retries at the next start
                log.exception("deleting removed snapshots failed")
            finally:
                with self._cond:
                    self._busy = []
                    self._cond.notify_all()
