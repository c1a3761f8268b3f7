"""The unix socket paths pinnaced serves on (the CRI socket; NRI's): claimed only when nothing
else serves there, released only while they are still ours.

The root lock says no other pinnaced uses *this root*; it says nothing about the socket path,
which a second daemon on another root (or containerd, or CRI-O) may be serving. Taking such a
socket away, and removing it at exit, would leave the first daemon running but unreachable,
its pods orphaned from the kubelet. A path that holds anything but a socket is somebody's file,
never removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import FailedPrecondition

_KIND_NAMES = {
    stat.S_IFREG: "a regular file",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


#: How long a connect to a socket may take before it counts as nobody serving there.
CONNECT_TIMEOUT = 2.0


async def in_use(path: Path) -> bool:
    """Whether something accepts connections on the unix socket at ``path``."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _reader, writer = await asyncio.open_unix_connection(str(path))
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@dataclass(frozen=True, slots=True)
class Claim:
    """A socket path this process has bound: its inode, so that only our own socket is
    removed at exit (not one a successor bound at the same path)."""

    path: Path
    device: int
    inode: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            st = self.path.lstat()
            if (st.st_dev, st.st_ino) == (self.device, self.inode):
                self.path.unlink()


async def prepare(path: Path, *, setting: str) -> None:
    """Make ``path`` free to bind: its directory made, a stale socket removed. Raises
    ``FailedPrecondition`` naming ``setting`` (what the operator changes, e.g. ``--address or
    [daemon] address``) when something serves there, when a non-socket is there, or when the
    directory cannot be made."""
    if not _socket_there(path, setting=setting):
        return
    if await in_use(path):
        raise FailedPrecondition(
            f"{path}: another process serves this socket (a running pinnaced on another"
            f" --root, containerd, CRI-O?); stop it or choose another path with {setting}"
        )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # stale: left by a process that is gone


def _socket_there(path: Path, *, setting: str) -> bool:
    """Whether a socket is at ``path`` (its directory made first); anything else there, or a
    directory that cannot be made, is the operator's to fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # mkdir says "File exists" for a file where a directory of the path should be
        why = "it is not a directory" if isinstance(exc, FileExistsError) else exc.strerror
        raise FailedPrecondition(
            f"{path}: cannot create its directory {path.parent}: {why or exc}"
            f" (choose another path with {setting})"
        ) from None
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(st.st_mode):
        kind = _KIND_NAMES.get(stat.S_IFMT(st.st_mode), "not a socket")
        raise FailedPrecondition(
            f"{path} is {kind}, not a socket: pinnaced removes only stale sockets; move it"
            f" away or choose another path with {setting}"
        )
    return True


def claimed(path: Path) -> Claim:
    """The claim on ``path`` right after binding it."""
    st = os.lstat(path)
    return Claim(path, st.st_dev, st.st_ino)
