"""A directory watch on the asyncio loop, over Linux inotify (via ctypes).

The parser (:func:`parse_events`) is pure; :class:`DirectoryWatch` owns one inotify fd,
registered with ``loop.add_reader``, and calls a callback with each event. Used to learn of
exit files and of a log file conmon has just reopened, without polling.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_HEADER = struct.Struct("iIII")


@dataclass(frozen=True, slots=True)
class InotifyEvent:
    """One inotify event: watch descriptor, mask bits and the file name within the watched
    directory ("" for events about the directory itself)."""

    wd: int
    mask: int
    cookie: int
    name: str


def parse_events(buf: bytes) -> list[InotifyEvent]:
    """Split a buffer read from an inotify fd into events (names are NUL padded)."""
    events = []
    off = 0
    while off + _HEADER.size <= len(buf):
        wd, mask, cookie, length = _HEADER.unpack_from(buf, off)
        off += _HEADER.size
        raw = buf[off : off + length]
        off += length
        name = raw.split(b"\0", 1)[0].decode(errors="surrogateescape")
        events.append(InotifyEvent(wd, mask, cookie, name))
    return events


_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc  # a process-wide handle to libc, not state: loading it twice is harmless
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


class DirectoryWatch:
    """Watches one directory; ``callback(event)`` runs on the loop for every event. Overflows
    arrive as an event with ``IN_Q_OVERFLOW`` set, after which the caller must rescan."""

    def __init__(
        self, directory: Path, mask: int, callback: Callable[[InotifyEvent], None]
    ) -> None:
        self._directory = directory
        self._mask = mask
        self._callback = callback
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Create the inotify fd and the watch (non-blocking syscalls) and register with the
        running loop."""
        lib = _lib()
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        wd = lib.inotify_add_watch(fd, os.fsencode(self._directory), self._mask | IN_ONLYDIR)
        if wd < 0:
            e = ctypes.get_errno()
            os.close(fd)
            raise OSError(e, f"inotify_add_watch {self._directory}: {os.strerror(e)}")
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if not buf:
                return
            for event in parse_events(buf):
                self._callback(event)

    def close(self) -> None:
        """Unregister and close the fd; idempotent."""
        if self._fd >= 0:
            if self._loop is not None:
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DirectoryWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
