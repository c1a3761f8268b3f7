"""Process facts from /proc and pidfds: a process's start time, and awaiting its end.

A pid alone is not an identity (pids are reused); a pid together with its start time (field 22
of ``/proc/<pid>/stat``, in clock ticks since boot) is.
"""

from __future__ import annotations

import asyncio
import os
import signal as _signal

from runtime.errors import DeadlineExceeded


def parse_start_time(stat_text: str) -> int:
    """Field 22 (starttime) of a ``/proc/<pid>/stat`` line. The command name (field 2) may
    hold spaces and parentheses, so fields are counted after its last ')'."""
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); field 22 is rest[19].
    return int(rest[19])


def start_time(pid: int) -> int | None:
    """The start time of ``pid``, or None when no such process exists. Blocking (tiny)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_start_time(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_same_process(pid: int, recorded_start_time: int) -> bool:
    """True when ``pid`` is alive and is the process that started at ``recorded_start_time``
    (a zombie still counts: it has not been reaped, so the pid is not reused yet)."""
    return pid > 0 and start_time(pid) == recorded_start_time


def is_running(pid: int, recorded_start_time: int) -> bool:
    """True when ``pid`` is the recorded process and has not exited: unlike
    :func:`is_same_process`, a zombie (state Z or X) is not running. Blocking (tiny)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = text[text.rindex(")") + 2 :].split(maxsplit=1)[0]
    return parse_start_time(text) == recorded_start_time and state not in ("Z", "X")


def open_pidfd(pid: int, recorded_start_time: int) -> int | None:
    """A pidfd for ``pid`` if it is still the recorded process, else None. The start time is
    checked after opening, so the pidfd cannot point at a successor."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if start_time(pid) != recorded_start_time:
        os.close(fd)
        return None
    return fd


def signal_process(pid: int, recorded_start_time: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` through a pidfd if it is still the recorded process; False when
    it is gone or the pid now names another process (nothing is sent then). A zombie counts
    as the process (the signal is a no-op on it). Blocking (tiny)."""
    if pid <= 0 or recorded_start_time <= 0:
        return False
    fd = open_pidfd(pid, recorded_start_time)
    if fd is None:
        return False
    try:
        _signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
    return True


async def wait_pidfd(pidfd: int, timeout: float | None) -> None:  # noqa: ASYNC109
    """Await the end of the process behind ``pidfd`` (it becomes readable), then close it.
    Raises DeadlineExceeded after ``timeout`` seconds (the fd is closed either way)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, ready)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        raise DeadlineExceeded("process did not exit in time") from None
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
