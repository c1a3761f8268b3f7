"""Watching the conmons that supervise tasks, and what to do when one dies first.

A conmon ends normally right after its task's process: it writes the exit file, then exits.
A conmon that ends *without* an exit file (killed by an operator, the OOM killer, a crash)
leaves its container running unsupervised: nobody holds its stdio or will record its exit.
containerd treats a dead shim the same way: it kills what the shim supervised and reports the
task exited (with 128 + SIGKILL). pinnace does that too, and writes the exit file in conmon's
place so the fact is durable before anyone is told (and a restarted daemon finds it).

``ConmonWatch`` holds one pidfd per supervised task (opened with the recorded start time, so
it can never point at a process that reused the pid) and calls back on the loop when one
becomes readable, i.e. when that conmon has ended. Nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from runtime.errors import DeadlineExceeded
from runtime.tasks import procfs
from runtime.tasks.statefile import SUPERVISOR_LOST_FILE, TaskRecord, write_atomic

log = logging.getLogger(__name__)

# The exit code reported for a process killed because its supervisor died (128 + SIGKILL).
SUPERVISOR_LOST_EXIT_CODE = 128 + signal.SIGKILL


class ConmonWatch:
    """pidfds of live conmons; ``on_gone(task_id)`` runs on the loop when one ends."""

    def __init__(self, on_gone: Callable[[str], None]) -> None:
        self._on_gone = on_gone
        self._fds: dict[str, int] = {}

    def watch(self, task_id: str, conmon_pid: int, conmon_start_time: int) -> bool:
        """Start watching; False (and ``on_gone`` soon after) when that conmon is gone
        already. Call on the running loop."""
        self.unwatch(task_id)
        fd = procfs.open_pidfd(conmon_pid, conmon_start_time) if conmon_pid > 0 else None
        loop = asyncio.get_running_loop()
        if fd is None:
            loop.call_soon(self._on_gone, task_id)
            return False
        self._fds[task_id] = fd
        loop.add_reader(fd, self._fired, task_id)
        return True

    def unwatch(self, task_id: str) -> None:
        fd = self._fds.pop(task_id, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def take(self, task_id: str) -> int | None:
        """Stop watching and hand over the pidfd (the caller closes it); None when that conmon
        is not watched (it has ended, or was never seen alive). Call on the running loop."""
        fd = self._fds.pop(task_id, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
        return fd

    def close(self) -> None:
        for task_id in list(self._fds):
            self.unwatch(task_id)

    def _fired(self, task_id: str) -> None:
        self.unwatch(task_id)
        self._on_gone(task_id)


def supervisor_lost(task_dir: Path) -> bool:
    """Whether the manager wrote this task's exit file for a dead conmon. Blocking (a stat)."""
    return (task_dir / SUPERVISOR_LOST_FILE).exists()


async def kill_orphan(record: TaskRecord, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """SIGKILL the task's process (it is no longer anyone's child we could wait on) and await
    its end through a pidfd. A process that is gone already, or a pid now used by another
    process, is left alone."""
    if record.pid <= 0:
        return
    if record.start_time:
        fd = await asyncio.to_thread(procfs.open_pidfd, record.pid, record.start_time)
    else:  # an older record: the pid was the container's when conmon last watched it
        try:
            fd = os.pidfd_open(record.pid)
        except ProcessLookupError:
            fd = None
    if fd is None:
        return
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    try:
        await procfs.wait_pidfd(fd, timeout)
    except DeadlineExceeded:
        log.warning("process %d of task %s outlived SIGKILL", record.pid, record.id)


def write_lost_exit(task_dir: Path, exit_file: Path) -> None:
    """Record the exit of a task whose conmon died: the marker first, then the exit file
    conmon would have written (so a reader of the exit file always finds the marker).
    Blocking."""
    write_atomic(task_dir / SUPERVISOR_LOST_FILE, b"conmon died before its process ended\n")
    write_atomic(exit_file, str(SUPERVISOR_LOST_EXIT_CODE).encode())
