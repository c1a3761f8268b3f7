"""cri/loopwatch.py: callbacks that hold the event loop are reported; the time the loop's
thread waited for a CPU or spent starting a child process is not held against them (the
arithmetic is tested here; the e2e suite runs every daemon with it)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path

import pytest

from cri import loopwatch
from cri.daemon import LOG_FORMAT
from tests.support.daemon import Pinnaced


def test_parse_schedstat() -> None:
    assert loopwatch.parse_schedstat(b"54603320 176381960 36\n") == 176381960
    assert loopwatch.parse_schedstat(b"") == 0


def test_held_is_wall_less_cpu_wait_and_spawning() -> None:
    assert loopwatch.held_seconds(0.2, 50_000_000) == pytest.approx(0.15)
    assert loopwatch.held_seconds(0.2, 50_000_000, 0.1) == pytest.approx(0.05)
    assert loopwatch.held_seconds(0.1, 200_000_000) == 0.0


def _busy(seconds: float) -> None:
    """Blocking work on the loop (CPU), as a bug would do it."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _one_quick_and_one_slow_callback(caplog: pytest.LogCaptureFixture) -> None:
    """Run a loop with the watch at 50 ms: one callback returns at once, one holds the loop
    120 ms; the watch's reports land in ``caplog``."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        uninstall = loopwatch.install(loop, threshold_ms=50)
        try:
            assert loop.get_debug()
            done = loop.create_future()
            loop.call_soon(lambda: None)
            loop.call_soon(_busy, 0.12)
            loop.call_soon(done.set_result, None)
            await done
        finally:
            uninstall()

    with caplog.at_level(logging.WARNING, logger="cri.loopwatch"):
        asyncio.run(main())


def test_a_blocking_callback_is_reported_and_a_quick_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _one_quick_and_one_slow_callback(caplog)
    reports = [r.getMessage() for r in caplog.records if r.name == "cri.loopwatch"]
    assert len(reports) == 1
    assert "slow callback: held the loop" in reports[0] and "_busy" in reports[0]


def test_the_e2e_harness_reads_what_the_watch_logs(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The e2e suite fails a test on a slow callback only if tests/support/daemon.py parses
    the watch's line as pinnaced's log format writes it: a change of wording on either side
    must fail here, not silently switch the e2e check off."""

    _one_quick_and_one_slow_callback(caplog)
    formatter = logging.Formatter(LOG_FORMAT)
    lines = [formatter.format(r) for r in caplog.records if r.name == "cri.loopwatch"]
    daemon = Pinnaced(tmp_path)  # never started: only its log reading is used
    try:
        daemon.log_path.write_text("INFO cri.daemon: ready\n" + "\n".join(lines) + "\n")
        (slow,) = daemon.slow_callbacks()
    finally:
        daemon.close()  # its short socket directory in /tmp
    assert slow.held_ms >= 50 and slow.wall_ms >= slow.held_ms and "_busy" in slow.what


def test_uninstall_leaves_asyncio_and_subprocess_as_they_were() -> None:
    run, spawn = asyncio.events.Handle._run, subprocess.Popen._execute_child  # type: ignore[attr-defined]

    async def main() -> None:
        uninstall = loopwatch.install(asyncio.get_running_loop(), threshold_ms=50)
        assert asyncio.events.Handle._run is not run
        assert subprocess.Popen._execute_child is not spawn  # type: ignore[attr-defined]
        # a child started from the loop thread still works through the wrapper
        subprocess.run(["/bin/true"], check=True)  # noqa: ASYNC221 - the point of the test
        uninstall()

    asyncio.run(main())
    assert asyncio.events.Handle._run is run
    assert subprocess.Popen._execute_child is spawn  # type: ignore[attr-defined]
