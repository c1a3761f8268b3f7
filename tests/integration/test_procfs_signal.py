"""procfs.signal_process: a signal reaches the recorded process and never a pid's successor."""

from __future__ import annotations

import signal
import subprocess

from runtime.tasks import procfs


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def test_signal_reaches_the_recorded_process() -> None:
    proc = _sleeper()
    try:
        started = procfs.start_time(proc.pid)
        assert started is not None
        assert procfs.signal_process(proc.pid, started, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def test_a_different_start_time_sends_nothing() -> None:
    proc = _sleeper()
    try:
        started = procfs.start_time(proc.pid)
        assert started is not None
        assert not procfs.signal_process(proc.pid, started + 1, signal.SIGKILL)
        assert proc.poll() is None  # still running: the signal was not sent
    finally:
        proc.kill()
        proc.wait()


def test_a_reaped_or_unknown_process_sends_nothing() -> None:
    proc = _sleeper()
    started = procfs.start_time(proc.pid)
    assert started is not None
    proc.kill()
    proc.wait()
    assert not procfs.signal_process(proc.pid, started, signal.SIGKILL)
    assert not procfs.signal_process(0, started, signal.SIGKILL)
    assert not procfs.signal_process(proc.pid, 0, signal.SIGKILL)
