"""Watching the event loop for callbacks that hold it: a development and test aid.

With ``daemon.slow_callback_ms`` (``--slow-callback-ms``) above 0 the daemon runs its loop in
asyncio debug mode and every callback the loop runs is timed. A callback that holds the loop
longer than the threshold is logged at WARNING on this module's logger::

    slow callback: held the loop 153 ms (wall 171 ms, 18 ms waiting for a CPU,
    0 ms spawning): <Task ...>          (one line in the log)

Terms:

wall
    What asyncio's own debug check measures: the monotonic time from the callback's start to
    its end.
waiting for a CPU
    The part of that time the loop's thread was runnable but not running (the kernel's
    run-queue delay, ``/proc/thread-self/schedstat`` field 2). On a loaded machine another
    process's time slice can land in the middle of a cheap callback; that is not the
    callback's doing.
spawning
    Time spent in ``subprocess.Popen._execute_child`` on the loop's thread: asyncio starts
    child processes (runc, conmon, CNI plugins) from the loop by design, and the parent waits
    there until the child has exec'd, which on a loaded machine waits for the child to get a
    CPU. That is the kernel's scheduling, not the callback's work.
held
    wall minus waiting for a CPU and spawning: the time the callback itself ran or blocked (in
    a system call, on a lock, on disk). This is what the threshold applies to, so the check
    catches blocking work on the loop and stays quiet under load.

asyncio's own wall-clock report is switched off (its threshold set out of reach) so each slow
callback is reported once, in the terms above. The e2e harness (``tests/support/daemon.py``)
reads these lines from the daemon's log.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_SCHEDSTAT = "/proc/thread-self/schedstat"
_OUT_OF_REACH = 24 * 3600.0


def parse_schedstat(data: bytes) -> int:
    """Nanoseconds the thread has waited on a run queue (the second of three fields)."""
    fields = data.split()
    return int(fields[1]) if len(fields) >= 2 else 0


class _RunQueue:
    """The loop thread's run-queue delay so far, read through one kept-open descriptor (it
    names the thread that opened it: open it on the loop's thread)."""

    def __init__(self) -> None:
        try:
            self._fd: int | None = os.open(_SCHEDSTAT, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._fd = None  # no schedstats: wall time only

    def waited_ns(self) -> int:
        if self._fd is None:
            return 0
        try:
            return parse_schedstat(os.pread(self._fd, 128, 0))
        except (OSError, ValueError):
            return 0


def held_seconds(wall: float, waited_ns: int, spawning: float = 0.0) -> float:
    """The time a callback held the loop: wall time less the thread's run-queue wait and the
    time spent starting child processes."""
    return max(0.0, wall - waited_ns / 1e9 - spawning)


def describe(handle: Any) -> str:
    """A task's step is told by its task (its coroutine and the line it stopped at next), any
    other callback by the handle."""
    owner = getattr(getattr(handle, "_callback", None), "__self__", None)
    if isinstance(owner, asyncio.Task):
        return repr(owner)
    return repr(handle)


def install(loop: asyncio.AbstractEventLoop, *, threshold_ms: int) -> Callable[[], None]:
    """Turn on debug mode and the held-time check for ``loop``, from the loop's own thread.
    Returns a function that undoes it."""
    threshold = threshold_ms / 1000
    queue = _RunQueue()
    loop.set_debug(True)
    loop.slow_callback_duration = _OUT_OF_REACH
    original = asyncio.events.Handle._run
    original_spawn = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    loop_thread = threading.get_ident()
    spawning = [0.0]  # seconds spent starting children on the loop thread, this callback

    def timed_spawn(popen: Any, *args: Any, **kwargs: Any) -> Any:
        if threading.get_ident() != loop_thread:
            return original_spawn(popen, *args, **kwargs)
        start = time.monotonic()
        try:
            return original_spawn(popen, *args, **kwargs)
        finally:
            spawning[0] += time.monotonic() - start

    def timed_run(handle: Any) -> None:
        start = time.monotonic()
        waited_before = queue.waited_ns()
        spawning[0] = 0.0
        try:
            original(handle)
        finally:
            wall = time.monotonic() - start
            if wall >= threshold:
                waited = queue.waited_ns() - waited_before
                held = held_seconds(wall, waited, spawning[0])
                if held >= threshold:
                    log.warning(
                        "slow callback: held the loop %.0f ms (wall %.0f ms, %.0f ms waiting "
                        "for a CPU, %.0f ms spawning): %s",
                        held * 1000,
                        wall * 1000,
                        waited / 1e6,
                        spawning[0] * 1000,
                        describe(handle),
                    )

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign,assignment]
    subprocess.Popen._execute_child = timed_spawn  # type: ignore[attr-defined]

    def uninstall() -> None:
        asyncio.events.Handle._run = original  # type: ignore[method-assign,assignment]
        subprocess.Popen._execute_child = original_spawn  # type: ignore[attr-defined]

    return uninstall
