"""procfs.signal_process: a signal reaches the recorded process and never a pid's successor."""

from __future__ import annotations

import os
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


def test_a_zombie_is_the_same_process_but_not_running() -> None:
    """Recovery asks whether a conmon still supervises: an exited, unreaped one does not."""
    proc = _sleeper()
    try:
        started = procfs.start_time(proc.pid)
        assert started is not None
        assert procfs.is_running(proc.pid, started)
        assert not procfs.is_running(proc.pid, started + 1)
        proc.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert procfs.is_same_process(proc.pid, started)
        assert not procfs.is_running(proc.pid, started)
    finally:
        proc.kill()
        proc.wait()
    assert not procfs.is_running(proc.pid, started)
