"""``runc start`` and ``runc delete`` done by pinnace itself, where that is the same thing.

runc keeps a container's state in ``<root>/<id>/``: ``state.json`` (its libcontainer state:
the cgroup paths it made, the container's config with its hooks and namespaces) and, between
``create`` and ``start``, ``exec.fifo``. What the two commands do there (runc 1.1, ``start.go``
and ``delete.go`` with libcontainer's ``exec()`` and ``destroy()``):

- ``start`` of a created container opens ``exec.fifo`` for reading, reads until the writer
  closes it (the container's init writes one byte, then its ``execve`` closes the fifo), and
  removes the fifo. That is all: no hooks run there in runc 1.1 (poststart hooks run in
  ``create``), and a container is "running" to runc from then on because the fifo is gone.
- ``delete`` of a stopped container (its init is gone) runs ``destroy()``: SIGKILL to every
  process of its cgroups unless it has a PID namespace of its own, removal of every cgroup
  path in ``cgroup_paths`` (each ``rmdir``, subdirectories first, five rounds 10, 20, 40, 80 ms
  apart while one is busy), removal of the Intel RDT group, ``rm -rf <root>/<id>``, then its
  poststop hooks.

Starting a Go binary for each costs the daemon's node a process of ~8 ms CPU each, so pinnace
does these itself, but only when :func:`read_state` finds runc's own format and the container
has no hooks at all (newer runcs run poststart hooks in ``start``), no Intel RDT group, a
cgroupfs (not systemd) cgroup manager, is not rootless and, for delete, its own PID namespace
(so the kernel ended every process in it when its init died, and there is nothing to kill).
Anything else — crun, which keeps other files, or any condition unmet — returns None and the
caller runs the runtime's command as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import DeadlineExceeded, FailedPrecondition
from runtime.tasks import procfs

EXEC_FIFO = "exec.fifo"
STATE_FILE = "state.json"
# libcontainer.cgroups.RemovePaths: five rounds, 10 ms before the second, doubling.
_RMDIR_ROUNDS = 5
_RMDIR_FIRST_DELAY = 0.010


@dataclass(frozen=True, slots=True)
class RuncState:
    """What of runc's ``state.json`` decides whether pinnace may act in runc's place."""

    directory: Path
    cgroup_paths: tuple[str, ...]
    has_hooks: bool
    own_pid_namespace: bool
    systemd_cgroups: bool
    rootless: bool
    intel_rdt: bool

    @property
    def startable(self) -> bool:
        """``runc start`` is only the exec fifo handshake for this container."""
        return not self.has_hooks

    @property
    def deletable(self) -> bool:
        """``runc delete`` of this stopped container is only removing its cgroups and state."""
        return (
            not self.has_hooks
            and self.own_pid_namespace
            and not self.systemd_cgroups
            and not self.rootless
            and not self.intel_rdt
        )


def read_state(root: Path, container_id: str) -> RuncState | None:
    """runc's state of ``container_id`` under ``root``, or None when it is not there or not in
    runc's format (the caller then runs the runtime). Blocking (one small read)."""
    directory = root / container_id
    try:
        raw = json.loads((directory / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    try:
        config = raw["config"]
        paths = raw["cgroup_paths"] or {}
        hooks = config.get("Hooks") or {}
        namespaces = config.get("namespaces") or []
        cgroups = config.get("cgroups") or {}
        return RuncState(
            directory=directory,
            cgroup_paths=tuple(str(p) for p in paths.values() if p),
            has_hooks=any(bool(v) for v in hooks.values()),
            own_pid_namespace=any(
                ns.get("type") == "NEWPID" and not ns.get("path") for ns in namespaces
            ),
            systemd_cgroups=bool(cgroups.get("Systemd")),
            rootless=bool(raw.get("rootless")) or bool(cgroups.get("Rootless")),
            intel_rdt=bool(raw.get("intel_rdt_path")) or bool(config.get("intel_rdt")),
        )
    except (AttributeError, KeyError, TypeError):
        return None


# -- start ------------------------------------------------------------------------------------
def open_exec_fifo(state: RuncState) -> int | None:
    """The exec fifo opened for reading without blocking (a writer need not be there yet), or
    None when there is no fifo (the container was started already). Blocking (an open)."""
    path = state.directory / EXEC_FIFO
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


async def start(
    state: RuncState,
    fifo: int,
    *,
    init_pid: int,
    init_start_time: int,
    timeout: float,  # noqa: ASYNC109
) -> None:
    """Release the created container's init (``fifo`` from :func:`open_exec_fifo`, closed
    here): read the fifo until its writer closes it, then remove it. FailedPrecondition when
    the init died before it wrote (runc: "container process is already dead");
    DeadlineExceeded after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    got = bytearray()
    pidfd = procfs.open_pidfd(init_pid, init_start_time) if init_pid > 0 else None

    def drain() -> bool:
        """Read what is there; True once the writer has closed the fifo."""
        while True:
            try:
                chunk = os.read(fifo, 64)
            except BlockingIOError:
                return False
            if not chunk:
                return True
            got.extend(chunk)

    def fifo_ready() -> None:
        # EOF before any writer came cannot happen: a fifo reader sees end of file only
        # once a writer has opened and closed it (the kernel counts writers since our open)
        if drain() and not done.done():
            done.set_result(None)

    def init_gone() -> None:
        drain()
        if not done.done():
            done.set_result(None)

    loop.add_reader(fifo, fifo_ready)
    if pidfd is not None:
        loop.add_reader(pidfd, init_gone)
    try:
        if pidfd is None:  # the init is gone already: only what it wrote before counts
            drain()
            done.set_result(None)
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"container init did not take the start in {timeout}s") from None
    finally:
        loop.remove_reader(fifo)
        os.close(fifo)
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    if not got:
        raise FailedPrecondition("container process is already dead")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state.directory / EXEC_FIFO)


# -- delete -----------------------------------------------------------------------------------
def destroy(state: RuncState) -> list[str]:
    """What ``runc delete`` does for a stopped, :attr:`RuncState.deletable` container: its
    cgroups removed (retrying busy ones as runc does), then its state directory. Returns the
    cgroup paths that stayed busy (runc logs and ignores them too). Blocking."""
    left = [p for p in state.cgroup_paths if os.path.lexists(p)]
    delay = _RMDIR_FIRST_DELAY
    for round_ in range(_RMDIR_ROUNDS):
        if round_:
            time.sleep(delay)
            delay *= 2
        left = [p for p in left if not _remove_cgroup(Path(p))]
        if not left:
            break
    shutil.rmtree(state.directory, ignore_errors=True)
    return left


def _remove_cgroup(path: Path) -> bool:
    """rmdir ``path``, children first; True once it is gone."""
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as e:
        if e.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
            raise
    try:
        children = [entry for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return True
    if not all(_remove_cgroup(Path(child.path)) for child in children):
        return False
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True
