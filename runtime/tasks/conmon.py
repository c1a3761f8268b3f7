"""Launching conmon and reading its sync pipe.

conmon (API version 1) is told everything on its command line. It daemonizes itself (forks
once, the parent writes ``--conmon-pidfile`` and exits; the child calls ``setsid`` and points
its stdio at /dev/null), so a task survives the daemon. It reports through the **sync pipe**,
an fd named by ``_OCI_SYNCPIPE``: one JSON line ``{"data": <container pid>}`` once the runtime
has created the container, or ``{"data": -1, "message": "<runtime stderr>"}`` when it failed.
Without that pipe a failed create would leave no message at all.

The argv builder and the message parser are pure; :func:`spawn_conmon` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import DeadlineExceeded, FailedPrecondition, Internal
from runtime.tasks.interfaces import RuntimeHandler, TaskSpec
from runtime.tasks.runtime_cli import runtime_message


@dataclass(frozen=True, slots=True)
class ConmonPaths:
    """The files and directories a conmon is pointed at for one task."""

    task_dir: Path
    conmon_pidfile: Path
    container_pidfile: Path
    exit_dir: Path
    socket_dir: Path


@dataclass(frozen=True, slots=True)
class SyncMessage:
    """One line from the sync pipe: ``data`` is a pid (create) or an exit code (exec); a
    negative ``data`` means failure and ``message`` says why."""

    data: int
    message: str | None


def build_argv(
    conmon: Path,
    handler: RuntimeHandler,
    spec: TaskSpec,
    paths: ConmonPaths,
    *,
    runtime_args: Sequence[str] = (),
) -> list[str]:
    """conmon's command line for creating ``spec`` with ``handler``."""
    argv = [
        str(conmon),
        "--api-version",
        "1",
        "-c",
        spec.id,
        "-n",
        spec.id,
        "-u",
        spec.id,
        "-r",
        str(handler.binary),
        "-b",
        str(spec.bundle),
        "-p",
        str(paths.container_pidfile),
        "-P",
        str(paths.conmon_pidfile),
        "-l",
        f"k8s-file:{spec.log_path}",
        "--exit-dir",
        str(paths.exit_dir),
        "--socket-dir-path",
        str(paths.socket_dir),
        "--runtime-arg",
        "--root",
        "--runtime-arg",
        str(handler.root),
    ]
    for arg in runtime_args:
        argv += ["--runtime-arg", arg]
    if spec.log_size_max > 0:
        argv += ["--log-size-max", str(spec.log_size_max)]
    if spec.tty:
        argv.append("-t")
    if spec.stdin:
        argv.append("-i")
        if not spec.stdin_once:
            argv.append("--leave-stdin-open")
    return argv


def parse_sync_message(line: bytes) -> SyncMessage:
    """Parse one sync-pipe JSON line (``data``; older conmons say ``pid`` or ``exit_code``)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise Internal(f"conmon wrote an unreadable sync message {line!r}") from e
    for key in ("data", "pid", "exit_code"):
        if key in obj:
            msg = obj.get("message")
            return SyncMessage(int(obj[key]), None if msg is None else str(msg))
    raise Internal(f"conmon sync message without a result: {line!r}")


async def _read_line(fd: int, timeout: float) -> bytes:  # noqa: ASYNC109
    """Read from a non-blocking pipe fd until a newline or EOF, with a deadline."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return
            if not chunk or b"\n" in chunk:
                buf.extend(chunk)
                if not done.done():
                    done.set_result(None)
                return
            buf.extend(chunk)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(done, timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"conmon did not report within {timeout}s") from None
    finally:
        loop.remove_reader(fd)
    return bytes(buf).split(b"\n", 1)[0]


async def spawn_conmon(argv: Sequence[str], *, cwd: Path, timeout: float) -> int:  # noqa: ASYNC109
    """Run conmon, wait for its report and return the container's pid. Raises
    FailedPrecondition with the runtime's message when the create failed.

    conmon starts in a new session with stdio on /dev/null and no fds but the sync pipe's
    write end, so nothing ties it to this process: SIGKILL of the daemon leaves it running.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(r, False)
    try:
        env = dict(os.environ)
        env["_OCI_SYNCPIPE"] = str(w)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(w,),
            env=env,
            cwd=str(cwd),
            start_new_session=True,
        )
        os.close(w)
        w = -1
        # The direct child forks the supervisor and exits at once; reap it and keep what it
        # said (argument errors are printed there, before it forks).
        _, early = await asyncio.wait_for(proc.communicate(), timeout)
        line = await _read_line(r, timeout)
    except TimeoutError:
        raise DeadlineExceeded(f"conmon did not start within {timeout}s") from None
    except (FileNotFoundError, PermissionError) as exc:
        raise FailedPrecondition(
            f"cannot run conmon {argv[0]}: {exc.strerror}; install conmon or set runtime.conmon"
        ) from None
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)
    if not line:
        detail = runtime_message(early) or f"exit status {proc.returncode}"
        raise FailedPrecondition(f"conmon failed before creating the container: {detail}")
    msg = parse_sync_message(line)
    if msg.data <= 0:
        raise FailedPrecondition(runtime_message(msg.message or "") or "container create failed")
    return msg.data


def signal_ctl(bundle: Path, message: str) -> None:
    """Write one control line to conmon's ``<bundle>/ctl`` fifo (``"2 0 0\\n"`` reopens the
    log, ``"1 <rows> <cols>\\n"`` resizes the terminal). Non-blocking: raises OSError
    (ENXIO) when no conmon has the fifo open. Blocking only in the trivial sense."""
    fd = os.open(bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, message.encode())
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
