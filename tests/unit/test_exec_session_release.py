"""An exec session released while its conmon has not reported the exit (the SIGKILL grace
ran out): the read of the sync pipe ends before the pipe closes, so its fd number is not
left deaf in the loop's selector for the next file that gets it. That happened after 100
concurrent sessions under load: the next client's socket got the number and its upgrade
request was never read (a reset after 30 s), or the next session's conmon pipe was never
seen ("conmon did not report in time")."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from runtime.tasks import exec_session
from runtime.tasks.attach import AttachedStdio


def test_release_leaves_no_deaf_fd_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exec_session, "_KILL_GRACE", 0.05)

    async def run() -> None:
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)  # a conmon that never reports
        os.set_blocking(sync_r, False)
        ours, conmons = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        pidfd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)  # kill reaches nothing
        (tmp_path / "e").mkdir()
        session = exec_session.ExecSession(
            "e", tmp_path / "e", tmp_path / "link", AttachedStdio(ours),
            exec_session._Lines(sync_r), pidfd,
        )  # fmt: skip
        await session.release()
        assert not (tmp_path / "e").exists()
        # A new pipe on the old sync pipe's number (as the next open would often get it).
        r, w = os.pipe2(os.O_CLOEXEC)
        if r != sync_r:
            os.dup2(r, sync_r, inheritable=False)
            os.close(r)
            r = sync_r
        lines = exec_session._Lines(r)
        try:
            os.set_blocking(r, False)
            os.write(w, b'{"data": 0}\n')
            assert await lines.next(5) == b'{"data": 0}'
        finally:
            lines.close()
            for fd in (w, sync_w):
                os.close(fd)
            conmons.close()

    asyncio.run(run())
