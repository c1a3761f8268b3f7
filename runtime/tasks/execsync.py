"""Synchronous exec: run a command in a task and collect stdout, stderr and the exit code.

This calls ``<runtime> exec`` directly with two pipes, not conmon. The runtime hands the pipes
to the process unchanged, so the streams stay apart byte for byte, and one process fewer is
started than with ``conmon --exec`` (which would interleave both streams into a CRI log file
that must be parsed back). ``--pid-file`` names the exec'd process so a timeout kills exactly
it; the runtime then exits with 137.

After the runtime exits, the pipes are drained of what is already buffered and closed: a
background child of the command that keeps a pipe open cannot stall the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runtime.errors import DeadlineExceeded, FailedPrecondition
from runtime.tasks.interfaces import ExecResult, RuntimeHandler
from runtime.tasks.runtime_cli import runtime_message

# Output beyond this per stream is dropped: a runaway command must not exhaust the daemon.
MAX_OUTPUT = 16 * 1024 * 1024
# How long to wait for the runtime to exit after the exec'd process was killed.
_KILL_GRACE = 10.0


class HelperFailed(Exception):
    """The exec helper failed in a way of its own before the command could have run (it said
    so with ``retry_code``, or could not be started at all: E2BIG, a denied memfd exec): the
    caller runs the same exec with the OCI runtime."""


class _Collector:
    """Reads a non-blocking pipe on the loop into a bounded buffer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self.eof = False

    def on_readable(self) -> None:
        self.drain()

    def drain(self) -> None:
        while not self.eof:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            room = MAX_OUTPUT - len(self.data)
            if room > 0:
                self.data += chunk[:room]


def exec_argv(
    handler: RuntimeHandler,
    task_id: str,
    argv: Sequence[str],
    *,
    pid_file: Path,
    env: Sequence[str],
    cwd: str | None,
    user: str | None,
    tty: bool,
) -> list[str]:
    """The runtime command line for one exec (pure)."""
    cmd = [str(handler.binary), "--root", str(handler.root), "exec", "--pid-file", str(pid_file)]
    for kv in env:
        cmd += ["--env", kv]
    if cwd:
        cmd += ["--cwd", cwd]
    if user:
        cmd += ["--user", user]
    if tty:
        cmd.append("--tty")
    cmd.append(task_id)
    cmd += list(argv)
    return cmd


async def exec_sync(
    handler: RuntimeHandler,
    task_id: str,
    argv: Sequence[str],
    *,
    pid_file: Path,
    timeout: float | None,  # noqa: ASYNC109
    env: Sequence[str] = (),
    cwd: str | None = None,
    user: str | None = None,
    tty: bool = False,
) -> ExecResult:
    """Run ``argv`` in task ``task_id``. A runtime failure that started no process (no such
    binary, task not running) raises FailedPrecondition with the runtime's message."""
    cmd = exec_argv(handler, task_id, argv, pid_file=pid_file, env=env, cwd=cwd, user=user, tty=tty)
    return await run_exec(cmd, pid_file=pid_file, timeout=timeout, what=f"{handler.name} exec")


async def run_exec(
    cmd: Sequence[str],
    *,
    pid_file: Path,
    timeout: float | None,  # noqa: ASYNC109
    what: str,
    exec_fd: int | None = None,
    started_fd_option: str | None = None,
    retry_code: int | None = None,
    args_fd_option: str | None = None,
) -> ExecResult:
    """Run an exec command line (``runc exec`` or ``pinnace-exec``: both write ``pid_file``
    once the command runs, pass their stdio to it, and exit with its code or 128 + its
    signal) and collect the result. Nothing started (no pid file): FailedPrecondition with
    the message ``what`` printed. ``exec_fd``: the program is that open file (executed as
    ``/proc/self/fd/N``, ``cmd[0]`` only names it). ``started_fd_option``: the program
    takes this option with a pipe's fd, writes one byte there once the command runs, and
    removes the pid file itself after the command ended (``pinnace-exec``): no thread hop
    to learn whether it started. ``retry_code``: the program's exit code for "failed before
    the command ran, for a reason of its own": HelperFailed instead of FailedPrecondition
    (so does a program given by ``exec_fd`` that cannot be started). ``args_fd_option``:
    the arguments after ``cmd[0]`` go NUL-separated in a memfd passed with this option, not
    on the command line (which any process can read in /proc), and the program gets an
    empty environment (``pinnace-exec``)."""
    loop = asyncio.get_running_loop()
    removed = False
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    started_r = started_w = args_fd = -1
    collectors = [_Collector(out_r), _Collector(err_r)]
    try:
        for c in collectors:
            os.set_blocking(c.fd, False)
        extra: dict[str, Any] = {}
        pass_fds: list[int] = []
        if exec_fd is not None:
            extra["executable"] = f"/proc/self/fd/{exec_fd}"
            pass_fds.append(exec_fd)
        if args_fd_option is not None:
            args = [os.fsencode(a) for a in cmd[1:]]
            if any(b"\0" in a for a in args):
                raise HelperFailed(f"{what}: an argument with a NUL byte")
            args_fd = os.memfd_create("pinnace-exec-args", os.MFD_CLOEXEC)
            data = memoryview(b"".join(a + b"\0" for a in args))
            while data:
                data = data[os.write(args_fd, data) :]
            pass_fds.append(args_fd)
            cmd = [cmd[0], args_fd_option, str(args_fd)]
            extra["env"] = {}
        if started_fd_option is not None:
            started_r, started_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            pass_fds.append(started_w)
            cmd = [cmd[0], started_fd_option, str(started_w), *cmd[1:]]
        if pass_fds:
            extra["pass_fds"] = tuple(pass_fds)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                **extra,
            )
        except OSError as exc:
            if exec_fd is None:
                raise
            raise HelperFailed(f"{what}: cannot start {cmd[0]}: {exc}") from exc
        os.close(out_w)
        os.close(err_w)
        out_w = err_w = -1
        if started_w >= 0:
            os.close(started_w)
            started_w = -1
        for c in collectors:
            loop.add_reader(c.fd, c.on_readable)
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await _kill_exec(proc, pid_file, term_first=started_fd_option is not None)
        for c in collectors:
            loop.remove_reader(c.fd)
            c.drain()
        code = proc.returncode
        assert code is not None
        if started_r >= 0 and code >= 0 and _read_started(started_r):
            started = removed = True  # and the helper removed its pid file
        else:
            # the pid file says a process was started; removing it answers that in one call
            started = await asyncio.to_thread(_remove_pid_file, pid_file)
            removed = True
        if not started and not timed_out:
            if retry_code is not None and code == retry_code:
                raise HelperFailed(f"{what}: {runtime_message(bytes(collectors[1].data))}")
            raise FailedPrecondition(f"{what}: {runtime_message(bytes(collectors[1].data))}")
        return ExecResult(
            exit_code=code if code >= 0 else 128 - code,
            stdout=bytes(collectors[0].data),
            stderr=bytes(collectors[1].data),
            timed_out=timed_out,
        )
    finally:
        for fd in (out_w, err_w, started_r, started_w, args_fd):
            if fd >= 0:
                os.close(fd)
        for c in collectors:
            loop.remove_reader(c.fd)
            os.close(c.fd)
        if not removed:
            await asyncio.to_thread(_remove_pid_file, pid_file)


async def _kill_exec(
    proc: asyncio.subprocess.Process, pid_file: Path, *, term_first: bool = False
) -> None:
    """SIGKILL the exec'd process (named in the pid file; the runtime has not reaped it yet,
    since it is still running, so the pid is not reused), then await the runtime. Without a
    pid file the runtime is killed; ``term_first``: with SIGTERM, on which ``pinnace-exec``
    SIGKILLs its child, so no command goes on running unsupervised."""
    pid = await asyncio.to_thread(_read_pid, pid_file)
    if pid > 0:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    elif term_first:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    else:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    try:
        await asyncio.wait_for(proc.wait(), _KILL_GRACE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        try:
            await asyncio.wait_for(proc.wait(), _KILL_GRACE)
        except TimeoutError:
            raise DeadlineExceeded("exec runtime did not exit after kill") from None


def _read_started(fd: int) -> bool:
    """Whether the helper wrote its byte (it has exited: the pipe holds all it wrote)."""
    try:
        return os.read(fd, 1) == b"1"
    except BlockingIOError:
        return False


def _remove_pid_file(path: Path) -> bool:
    """Remove the runtime's pid file; True when it existed (a process was started)."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0
