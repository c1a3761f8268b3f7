"""Interactive exec: a process in a running task, supervised by its own conmon (as CRI-O
does), its stdio reached through that conmon's attach socket.

Why conmon and not ``runc exec`` as our child: the process then has a supervisor that holds
its terminal and pipes, reaps it and writes its exit code whatever happens to the daemon; the
daemon's restart sweep (:func:`sweep`) finds every session dir and kills what is left, so no
exec'd process runs on unnoticed without a client.

The start is a handshake over three pipes conmon takes from its environment:

1. ``_OCI_STARTPIPE``: conmon blocks on a first read of it before doing anything; we write.
2. conmon daemonizes, binds ``<socket dir>/<exec id>/attach`` and reports on
   ``_OCI_ATTACHPIPE`` (``{"data": 0}``); we connect to the socket.
3. The runtime child blocks on a second read of the start pipe (``--exec-attach``), so no
   output is lost before we are attached; we write again and ``runtime exec`` runs.
4. ``_OCI_SYNCPIPE`` carries ``{"data": <pid>}`` once the process runs (negative with a
   message when ``runtime exec`` failed), later ``{"data": <exit code>}``.

Layout: ``<state>/execs/<exec id>/`` holds ``process.json`` (the task's OCI process with the
command and terminal replaced), conmon's pid files, its ``ctl`` FIFO (resize) and the
attach socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import DeadlineExceeded, FailedPrecondition
from runtime.tasks import conmon as conmon_mod
from runtime.tasks import procfs
from runtime.tasks.attach import AttachedStdio, connect
from runtime.tasks.interfaces import RuntimeHandler
from runtime.tasks.runtime_cli import runtime_message

log = logging.getLogger(__name__)

_START_TIMEOUT = 30.0
_KILL_GRACE = 10.0


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """One interactive exec into task ``task_id``."""

    task_id: str
    argv: tuple[str, ...]
    tty: bool = False
    stdin: bool = False


def exec_process(base: dict[str, object], argv: Sequence[str], *, tty: bool) -> dict[str, object]:
    """The OCI process for the exec (pure): the task's own process (user, env, cwd,
    capabilities, rlimits, profiles) with the command and terminal replaced, as CRI-O does."""
    process = {k: v for k, v in base.items() if k not in ("consoleSize", "args", "terminal")}
    process["args"] = list(argv)
    process["terminal"] = tty
    return process


def build_argv(
    conmon: Path,
    handler: RuntimeHandler,
    spec: ExecSpec,
    exec_id: str,
    exec_dir: Path,
    socket_dir: Path,
) -> list[str]:
    """conmon's command line for an attached exec session (pure)."""
    argv = [
        str(conmon), "--api-version", "1",
        "-c", spec.task_id, "-n", spec.task_id, "-u", exec_id,
        "-r", str(handler.binary), "-b", str(exec_dir),
        "-p", str(exec_dir / "pid"), "-P", str(exec_dir / "conmon.pid"),
        "-l", "none", "--exit-dir", str(exec_dir), "--socket-dir-path", str(socket_dir),
        "-e", "--exec-attach", "--exec-process-spec", str(exec_dir / "process.json"),
        "--runtime-arg", "--root", "--runtime-arg", str(handler.root),
    ]  # fmt: skip
    if spec.tty:
        argv.append("-t")
    if spec.stdin:
        argv.append("-i")
    return argv


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Lines:
    """JSON lines from a non-blocking pipe, kept across reads (two may arrive at once)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        self._eof = False

    async def next(self, timeout: float | None) -> bytes | None:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        while b"\n" not in self._buf and not self._eof:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fd, _settle, ready)
            try:
                await asyncio.wait_for(ready, timeout)
            except TimeoutError:
                raise DeadlineExceeded("conmon did not report in time") from None
            finally:
                loop.remove_reader(self.fd)
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                self._eof = True
            self._buf += chunk
        if not self._buf:
            return None
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return line

    def close(self) -> None:
        """Close the pipe, first taking it out of the loop's selector: an fd closed while
        registered leaves a stale entry there, and the next file to get the same number
        (a client's socket, another session's pipe) would then never be seen ready."""
        if self.fd < 0:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: nothing registered
            asyncio.get_running_loop().remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


class ExecSession:
    """A running exec'd process. ``stdio`` is its attach connection; ``wait`` gives the exit
    code; ``release`` kills it if still running and removes everything it used."""

    def __init__(
        self, exec_id: str, exec_dir: Path, socket_link: Path, stdio: AttachedStdio,
        sync: _Lines, pidfd: int,
    ) -> None:  # fmt: skip
        self.id = exec_id
        self.stdio = stdio
        self._dir = exec_dir
        self._link = socket_link
        self._sync = sync
        self._pidfd = pidfd
        self._exit: int | None = None
        self._waiter: asyncio.Task[int] | None = None

    async def wait(self) -> int:
        """The process's exit code (128+N when killed by signal N)."""
        if self._waiter is None:
            self._waiter = asyncio.ensure_future(self._read_exit())
        return await asyncio.shield(self._waiter)

    async def _read_exit(self) -> int:
        line = await self._sync.next(None)
        if line is None:
            return 255  # conmon died without reporting: treat as failed
        msg = conmon_mod.parse_sync_message(line)
        self._exit = msg.data if msg.data >= 0 else 255
        return self._exit

    def resize(self, *, rows: int, cols: int) -> None:
        """Resize the session's terminal (through conmon's ``ctl`` FIFO). Blocking only in
        the trivial sense (a non-blocking FIFO write)."""
        with contextlib.suppress(OSError):
            conmon_mod.signal_ctl(self._dir, f"1 {rows} {cols}\n")

    def kill(self) -> None:
        """SIGKILL the exec'd process (through its pidfd: never a reused pid)."""
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    async def release(self) -> None:
        """Kill the process if it still runs, await conmon's report, close and remove
        everything. Safe to call twice; shielded from cancellation by the caller's
        teardown."""
        if self._pidfd < 0:
            return
        # The attach socket first: conmon writes to it blocking, so output nobody reads any
        # more would hold conmon back from reporting the exit.
        self.stdio.close()
        self.kill()
        try:
            await asyncio.wait_for(self.wait(), _KILL_GRACE)
        except (TimeoutError, DeadlineExceeded):
            log.warning("exec %s: conmon did not report the exit after SIGKILL", self.id)
        if self._waiter is not None and not self._waiter.done():
            # Still reading the sync pipe: end that read before the pipe is closed.
            self._waiter.cancel()
            await asyncio.wait({self._waiter})
        self._sync.close()
        os.close(self._pidfd)
        self._pidfd = -1
        await asyncio.to_thread(_remove, self._dir, self._link)


def _remove(exec_dir: Path, link: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    shutil.rmtree(exec_dir, ignore_errors=True)


async def start(
    conmon: Path, handler: RuntimeHandler, spec: ExecSpec, *, bundle: Path, execs_dir: Path,
    socket_dir: Path,
) -> ExecSession:  # fmt: skip
    """Start ``spec`` under a new conmon and attach to it. FailedPrecondition with the
    runtime's message when nothing could be started (no such binary, task gone)."""
    exec_id = uuid.uuid4().hex[:16]
    exec_dir = execs_dir / exec_id
    link = socket_dir / exec_id

    def prepare() -> None:
        config = json.loads((bundle / "config.json").read_bytes())
        process = exec_process(config.get("process") or {}, spec.argv, tty=spec.tty)
        exec_dir.mkdir(parents=True, mode=0o700)
        (exec_dir / "process.json").write_text(json.dumps(process))

    await asyncio.to_thread(prepare)
    pipes = {name: os.pipe2(os.O_CLOEXEC) for name in ("sync", "start", "attach")}
    child_fds = {name: w if name != "start" else r for name, (r, w) in pipes.items()}
    ours = {name: r if name != "start" else w for name, (r, w) in pipes.items()}
    sync = _Lines(ours["sync"])
    attach_lines = _Lines(ours["attach"])
    for fd in (ours["sync"], ours["attach"]):
        os.set_blocking(fd, False)
    stdio: AttachedStdio | None = None
    pidfd = -1
    try:
        env = dict(os.environ)
        env["_OCI_SYNCPIPE"] = str(child_fds["sync"])
        env["_OCI_STARTPIPE"] = str(child_fds["start"])
        env["_OCI_ATTACHPIPE"] = str(child_fds["attach"])
        proc = await asyncio.create_subprocess_exec(
            *build_argv(conmon, handler, spec, exec_id, exec_dir, socket_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=tuple(child_fds.values()),
            env=env,
            cwd=str(exec_dir),
            start_new_session=True,
        )
        for fd in child_fds.values():
            os.close(fd)
        child_fds.clear()
        os.write(ours["start"], b"0")  # 1: let conmon go on
        _, early = await asyncio.wait_for(proc.communicate(), _START_TIMEOUT)
        ready = await attach_lines.next(_START_TIMEOUT)
        if ready is None:
            detail = runtime_message(early) or f"exit status {proc.returncode}"
            raise FailedPrecondition(f"conmon failed before the exec started: {detail}")
        try:
            stdio = await connect(link / "attach")
        except OSError as e:
            raise FailedPrecondition(f"cannot attach to the exec's conmon: {e}") from e
        os.write(ours["start"], b"0")  # 3: attached; run the process
        first = await sync.next(_START_TIMEOUT)
        if first is None:
            raise FailedPrecondition("conmon ended before the exec'd process started")
        msg = conmon_mod.parse_sync_message(first)
        if msg.data <= 0:
            text = runtime_message(msg.message or "") or "exec failed"
            raise FailedPrecondition(f"{handler.name} exec: {text}")
        try:
            pidfd = os.pidfd_open(msg.data)
        except ProcessLookupError:
            pidfd = -1
        if pidfd < 0:
            # Exited already: a pidfd of conmon itself serves for kill (harmless) and wait.
            pidfd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for fd in child_fds.values():
            os.close(fd)
        if stdio is not None:
            stdio.close()
        sync.close()
        attach_lines.close()
        with contextlib.suppress(OSError):
            os.close(ours["start"])
        await asyncio.shield(_cleanup_failed(exec_dir, link))
        raise
    attach_lines.close()
    with contextlib.suppress(OSError):
        os.close(ours["start"])
    return ExecSession(exec_id, exec_dir, link, stdio, sync, pidfd)


async def _cleanup_failed(exec_dir: Path, link: Path) -> None:
    """A failed start: end conmon if it runs, then remove the session's files."""
    pid = await asyncio.to_thread(_read_int, exec_dir / "conmon.pid")
    if pid > 0:
        st = procfs.start_time(pid)
        fd = procfs.open_pidfd(pid, st) if st is not None else None
        if fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
            with contextlib.suppress(DeadlineExceeded):
                await procfs.wait_pidfd(fd, _KILL_GRACE)
    await asyncio.to_thread(_remove, exec_dir, link)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def sweep(execs_dir: Path, socket_dir: Path) -> int:
    """At daemon start: kill the exec'd processes of sessions a previous run left (their
    clients are gone with it) and remove their dirs. Blocking; returns how many were found."""
    if not execs_dir.is_dir():
        return 0
    found = 0
    for d in execs_dir.iterdir():
        found += 1
        pid = _read_int(d / "pid")
        conmon_pid = _read_int(d / "conmon.pid")
        for p in (pid, conmon_pid):
            if p > 0 and _is_our_exec(p, d.name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        _remove(d, socket_dir / d.name)
    return found


def _is_our_exec(pid: int, exec_id: str) -> bool:
    """Whether ``pid`` is still this session's process or its conmon (the conmon's command
    line names the session id; the exec'd process is checked by its parent chain being gone
    quickly, so only conmon is trusted by name and the process only with it)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if exec_id.encode() in cmdline:
        return True
    # The exec'd process: its parent is the session's conmon.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        return exec_id.encode() in Path(f"/proc/{ppid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
