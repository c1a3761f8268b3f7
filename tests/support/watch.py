"""Wait for a file's content to satisfy a predicate, woken by inotify rather than by polling:
for facts only a file tells (a CRI log line conmon wrote)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import time
from collections.abc import Callable
from pathlib import Path

_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
_IN_MODIFY = 0x2
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def wait_for_content(path: Path, predicate: Callable[[bytes], bool], *, timeout: float) -> bytes:
    """The content of ``path`` once ``predicate`` holds for it; TimeoutError after ``timeout``
    seconds. The file's directory is watched, so the file may not exist yet."""
    fd = _libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    try:
        mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
        if _libc.inotify_add_watch(fd, str(path.parent).encode(), mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path.parent}")
        deadline = time.monotonic() + timeout
        while True:
            content = _read(path)  # read after the watch exists: no change is missed
            if predicate(content):
                return content
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{path} did not get the expected content in {timeout}s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                while True:
                    try:
                        if not os.read(fd, 65536):
                            break
                    except BlockingIOError:
                        break
    finally:
        os.close(fd)
