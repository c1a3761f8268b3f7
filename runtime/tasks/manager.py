"""TaskManager: containers as runc/crun tasks supervised by conmon.

See :mod:`runtime.tasks.interfaces` for the terms and the lifecycle, and
:mod:`runtime.tasks.statefile` for the on-disk layout under ``state_dir``. The manager keeps
every task it created or recovered in memory; the runtime is asked only by the operations
that must act (create, start, kill, delete, exec, update) and by ``state`` (slow path).

Exits are facts pushed by conmon's exit files through inotify; nothing polls. A conmon that
dies before its task's process (see :mod:`runtime.tasks.supervisors`) is seen through a pidfd:
the manager kills the orphaned process and writes the exit file in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal as _signal
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from runtime import cgroups
from runtime.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PinnaceError,
)
from runtime.tasks import conmon as conmon_mod
from runtime.tasks import exec_session, fastexec, procfs, runc_state
from runtime.tasks.attach import AttachedStdio
from runtime.tasks.attach import connect as attach_connect
from runtime.tasks.exec_helper import ExecHelper
from runtime.tasks.execsync import HelperFailed, run_exec
from runtime.tasks.execsync import exec_sync as _exec_sync
from runtime.tasks.exits import ExitHub
from runtime.tasks.inotify import IN_CREATE, IN_MOVED_TO, DirectoryWatch, InotifyEvent
from runtime.tasks.interfaces import (
    ExecResult,
    ExitCallback,
    ExitFact,
    RecoveredTask,
    RuntimeHandler,
    TaskInfo,
    TaskSpec,
    TaskState,
)
from runtime.tasks.runtime_cli import check_runtime, is_not_found, run_runtime, runtime_message
from runtime.tasks.statefile import TaskRecord, read_exit_code, read_record, write_atomic
from runtime.tasks.supervisors import (
    ConmonWatch,
    kill_orphan,
    supervisor_lost,
    write_lost_exit,
)

log = logging.getLogger(__name__)

# conmon's control fifo message that reopens the log file (REOPEN_LOGS_EVENT, no size).
_REOPEN_LOG = "2 0 0\n"
# Files conmon leaves in the bundle: its control fifos and the attach socket.
_CONMON_BUNDLE_FILES = ("ctl", "winsz", "attach")


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a recovery scan saw of a task: its conmon alive, and its exit file (if any)."""

    conmon_alive: bool
    exit: ExitFact | None


@dataclass(slots=True)
class _Task:
    """In-memory entry of a task: its durable record and whether a conmon watches it."""

    record: TaskRecord
    handler: RuntimeHandler
    task_dir: Path
    supervised: bool = True
    # how ExecSync runs here: the helper's plan, or why runc exec must (None: not read yet)
    exec_plan: fastexec.ExecPlan | str | None = None

    def info(self) -> TaskInfo:
        r = self.record
        return TaskInfo(r.id, r.pid, r.conmon_pid, r.conmon_start_time, r.created_at)


class TaskManager:
    """Creates and drives tasks; an async context manager (enter before use; leaving it stops
    watching exits but never touches the tasks, which outlive the daemon).

    ``state_dir`` must be short (conmon's attach socket lives at
    ``<state_dir>/sockets/<id>/attach`` and unix socket paths are limited to 107 bytes).
    ``handlers`` maps handler names to runtimes; ``conmon`` is the conmon binary.
    ``cgroup_mounts`` defaults to the host's (read when entering). ``exec_helper_dir``: build
    ``pinnace-exec`` (``runtime/tasks/exec_helper.c``) there when entering (in the
    background; the first ExecSync awaits it) and run ExecSync with it where a container
    allows (``runtime/tasks/fastexec.py``); None: always ``<runtime> exec``."""

    def __init__(
        self,
        state_dir: Path,
        handlers: Mapping[str, RuntimeHandler],
        conmon: Path,
        *,
        cgroup_mounts: cgroups.CgroupMounts | None = None,
        create_timeout: float = 120.0,
        runtime_timeout: float = 30.0,
        exec_helper_dir: Path | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._handlers = dict(handlers)
        self._conmon = conmon
        self._mounts = cgroup_mounts
        self._create_timeout = create_timeout
        self._runtime_timeout = runtime_timeout
        self._tasks_dir = state_dir / "tasks"
        self._exit_dir = state_dir / "exits"
        self._socket_dir = state_dir / "sockets"
        self._execs_dir = state_dir / "execs"
        self._tasks: dict[str, _Task] = {}
        self._creating: set[str] = set()
        self._hub = ExitHub(self._exit_dir, self._oom_probe, self._lost_probe)
        self._conmons = ConmonWatch(self._conmon_gone)
        self._orphan_tasks: set[asyncio.Task[None]] = set()
        self._exec_helper = (
            ExecHelper(exec_helper_dir, handlers) if exec_helper_dir is not None else None
        )

    # -- lifecycle of the manager ---------------------------------------------------------

    async def __aenter__(self) -> TaskManager:
        def prepare() -> cgroups.CgroupMounts:
            for d in (self._tasks_dir, self._exit_dir, self._socket_dir):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
            for h in self._handlers.values():
                h.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            swept = exec_session.sweep(self._execs_dir, self._socket_dir)
            if swept:
                log.info("ended %d exec sessions a previous run left", swept)
            return self._mounts or cgroups.detect()

        self._mounts = await asyncio.to_thread(prepare)
        self._hub.start()
        if self._exec_helper is not None:
            # in the background: a first build compiles (~0.3 s of CPU), later ones find it
            self._exec_helper.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._conmons.close()
        for t in list(self._orphan_tasks):
            t.cancel()
        await asyncio.gather(*self._orphan_tasks, return_exceptions=True)
        await self._hub.close()
        if self._exec_helper is not None:
            await self._exec_helper.close()

    # -- create / start -------------------------------------------------------------------

    async def create(self, spec: TaskSpec) -> TaskInfo:
        """Create the task: conmon runs ``<runtime> create`` and reports the container's pid.

        The state file is written before conmon starts (pid 0) and completed after, so a
        daemon crash in between leaves something recovery can clean. Raises InvalidArgument
        for an unknown handler, AlreadyExists for an id in use, FailedPrecondition with the
        runtime's message when the create fails (e.g. ``exec: "x": executable file not found
        in $PATH``)."""
        handler = self._handlers.get(spec.runtime)
        if handler is None:
            raise InvalidArgument(f"unknown runtime handler {spec.runtime!r}")
        if spec.id in self._tasks or spec.id in self._creating:
            raise AlreadyExists(f"task {spec.id} exists")
        self._creating.add(spec.id)
        task_dir = self._tasks_dir / spec.id
        try:
            record = await asyncio.to_thread(self._prepare_create, spec, task_dir)
            self._hub.expect(spec.id)
            try:
                pid = await conmon_mod.spawn_conmon(
                    conmon_mod.build_argv(self._conmon, handler, spec, self._paths(task_dir)),
                    cwd=task_dir,
                    timeout=self._create_timeout,
                )
                record = await asyncio.to_thread(self._complete_create, task_dir, pid, record)
            except BaseException:
                await asyncio.shield(self._undo_create(handler, spec.id, task_dir))
                raise
            task = _Task(record, handler, task_dir)
            self._tasks[spec.id] = task
            self._conmons.watch(spec.id, record.conmon_pid, record.conmon_start_time)
            return task.info()
        finally:
            self._creating.discard(spec.id)

    def _prepare_create(self, spec: TaskSpec, task_dir: Path) -> TaskRecord:
        try:
            config = json.loads((spec.bundle / "config.json").read_bytes())
        except FileNotFoundError:
            raise InvalidArgument(f"bundle {spec.bundle} has no config.json") from None
        except ValueError as e:
            raise InvalidArgument(f"bundle config.json is not JSON: {e}") from None
        cgroups_path = (config.get("linux") or {}).get("cgroupsPath") or None
        if os.path.lexists(task_dir):
            raise AlreadyExists(f"task {spec.id} has leftover state in {task_dir}")
        task_dir.mkdir(mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            (self._exit_dir / spec.id).unlink()
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        record = TaskRecord(
            id=spec.id,
            runtime=spec.runtime,
            bundle=str(spec.bundle),
            log_path=str(spec.log_path),
            cgroups_path=cgroups_path,
            pid=0,
            conmon_pid=0,
            conmon_start_time=0,
            created_at=time.time_ns(),
        )
        write_atomic(task_dir / "state.json", record.to_json())
        return record

    def _paths(self, task_dir: Path) -> conmon_mod.ConmonPaths:
        return conmon_mod.ConmonPaths(
            task_dir=task_dir,
            conmon_pidfile=task_dir / "conmon.pid",
            container_pidfile=task_dir / "pid",
            exit_dir=self._exit_dir,
            socket_dir=self._socket_dir,
        )

    @classmethod
    def _complete_create(cls, task_dir: Path, pid: int, record: TaskRecord) -> TaskRecord:
        """conmon's pid and start time and the container's start time into the record, which
        is written (one thread hop)."""
        conmon_pid, conmon_start = cls._read_conmon(task_dir)
        record = replace(
            record,
            pid=pid,
            conmon_pid=conmon_pid,
            conmon_start_time=conmon_start,
            start_time=procfs.start_time(pid) or 0,
        )
        write_atomic(task_dir / "state.json", record.to_json())
        return record

    @staticmethod
    def _read_conmon(task_dir: Path) -> tuple[int, int]:
        try:
            pid = int((task_dir / "conmon.pid").read_text().strip())
        except (FileNotFoundError, ValueError) as e:
            raise Internal(f"conmon wrote no usable pid file: {e}") from e
        st = procfs.start_time(pid)
        if st is None:
            raise Internal(f"conmon {pid} is gone right after creating the container")
        return pid, st

    async def _undo_create(self, handler: RuntimeHandler, task_id: str, task_dir: Path) -> None:
        """Remove whatever a failed or cancelled create left behind."""
        self._hub.forget(task_id)
        try:
            res = await run_runtime(
                handler, ["delete", "-f", task_id], timeout=self._runtime_timeout
            )
            if res.returncode != 0 and not is_not_found(runtime_message(res.stderr)):
                log.warning("cleanup of failed task %s: %s", task_id, runtime_message(res.stderr))
        except PinnaceError as exc:  # the runtime cannot even run: it made nothing either
            log.warning("cleanup of failed task %s: %s", task_id, exc)
        await asyncio.to_thread(self._remove_files, task_id, task_dir, None)

    async def start(self, id: str) -> None:
        """Run the created task's process: what ``<runtime> start`` does, done here for a runc
        container without hooks (:mod:`runtime.tasks.runc_state`), else by the runtime."""
        task = self._get(id)
        rec = task.record
        if task.supervised and rec.pid > 0 and rec.start_time > 0:
            opened = await asyncio.to_thread(self._open_exec_fifo, task.handler, id)
            if opened is not None:
                state, fifo = opened
                await runc_state.start(
                    state,
                    fifo,
                    init_pid=rec.pid,
                    init_start_time=rec.start_time,
                    timeout=self._runtime_timeout,
                )
                return
        await check_runtime(task.handler, ["start", id], timeout=self._runtime_timeout)

    @staticmethod
    def _open_exec_fifo(
        handler: RuntimeHandler, id: str
    ) -> tuple[runc_state.RuncState, int] | None:
        state = runc_state.read_state(handler.root, id)
        if state is None or not state.startable:
            return None
        fifo = runc_state.open_exec_fifo(state)
        return None if fifo is None else (state, fifo)

    # -- signals, exits, stop -------------------------------------------------------------

    async def kill(self, id: str, signal: int, *, all_processes: bool = False) -> None:
        """Send ``signal`` to the task's init process, or with ``all_processes`` to every
        process in its cgroup. FailedPrecondition when the task has already exited."""
        task = self._get(id)
        if self._hub.known(id) is not None:
            raise FailedPrecondition(f"task {id} has exited")
        rec = task.record
        if not all_processes and task.supervised and rec.pid > 0 and rec.start_time > 0:
            # What ``<runtime> kill`` does for the init, without starting the runtime: the
            # pid is the init's while its start time matches, and conmon (its parent) has
            # not reaped it while the exit is unknown, so it cannot name a successor.
            if await asyncio.to_thread(procfs.signal_process, rec.pid, rec.start_time, signal):
                return
            raise FailedPrecondition(f"task {id} is not running")
        args = ["kill"]
        if all_processes:
            args.append("--all")
        args += [id, str(int(signal))]
        await check_runtime(task.handler, args, timeout=self._runtime_timeout)

    async def wait(self, id: str, timeout: float | None = None) -> ExitFact:  # noqa: ASYNC109
        """Await the task's exit fact (immediately when it is known); DeadlineExceeded after
        ``timeout`` seconds."""
        task = self._get(id)
        if not task.supervised and self._hub.known(id) is None:
            raise FailedPrecondition(f"task {id} has no conmon: its exit cannot be observed")
        return await self._hub.wait(id, timeout)

    def exit_of(self, id: str) -> ExitFact | None:
        """The task's exit fact if it has exited (from memory; never blocks)."""
        return self._hub.known(id)

    def exits(self) -> AsyncGenerator[ExitFact, None]:
        """Every exit fact published from now on (an async iterator per subscriber)."""
        return self._hub.exits()

    def on_exit(self, callback: ExitCallback) -> Callable[[], None]:
        """Call ``callback(exit)`` on the loop for each exit; returns the unsubscribe call."""
        return self._hub.on_exit(callback)

    async def stop(
        self,
        id: str,
        *,
        timeout: float,  # noqa: ASYNC109
        signal: int = _signal.SIGTERM,
        kill_timeout: float = 10.0,
    ) -> ExitFact:
        """Send ``signal``, await the exit up to ``timeout`` seconds, then SIGKILL and await up
        to ``kill_timeout``. Returns the exit fact (at once if it had exited)."""
        self._get(id)
        known = self._hub.known(id)
        if known is not None:
            return known
        if timeout > 0:
            with contextlib.suppress(FailedPrecondition, NotFound):
                await self.kill(id, signal)
            with contextlib.suppress(DeadlineExceeded):
                return await self.wait(id, timeout)
        with contextlib.suppress(FailedPrecondition, NotFound):
            await self.kill(id, _signal.SIGKILL)
        return await self.wait(id, kill_timeout)

    # -- delete ---------------------------------------------------------------------------

    async def delete(self, id: str, *, force: bool = False) -> None:
        """Remove an exited task: what ``<runtime> delete`` does (done here for a runc
        container that allows it, see :mod:`runtime.tasks.runc_state`), then the exit file,
        socket link, state and conmon's files in the bundle; waits for its conmon to be gone.
        A live task raises FailedPrecondition unless ``force`` (SIGKILL first). Unknown ids
        are fine."""
        task = self._tasks.get(id)
        if task is None:
            return
        if task.supervised and self._hub.known(id) is None:
            if not force:
                raise FailedPrecondition(f"task {id} is still running")
            await self.stop(id, timeout=0)
        conmon_fd = self._conmons.take(id)
        if conmon_fd is not None:
            await self._await_pidfd(task.record, conmon_fd)
        bundle = Path(task.record.bundle)
        # conmon reaped the init (its exit is known), so to runc the container is stopped
        if not (
            task.supervised and await asyncio.to_thread(self._destroy_and_remove, task, id, bundle)
        ):
            await self._runtime_delete(task, id)
            await asyncio.to_thread(self._remove_files, id, task.task_dir, bundle)
        self._hub.forget(id)
        self._tasks.pop(id, None)

    def _destroy_and_remove(self, task: _Task, id: str, bundle: Path) -> bool:
        """runc's delete of a stopped container and the task's files, in one thread hop; False
        (nothing done) when runc's state does not allow doing it without runc."""
        state = runc_state.read_state(task.handler.root, id)
        if state is None or not state.deletable:
            return False
        busy = runc_state.destroy(state)
        if busy:  # runc logs these and carries on as well
            log.warning("cgroups of task %s stayed busy: %s", id, ", ".join(busy))
        self._remove_files(id, task.task_dir, bundle)
        return True

    async def _runtime_delete(self, task: _Task, id: str) -> None:
        args = ["delete", id] if task.supervised else ["delete", "-f", id]
        res = await run_runtime(task.handler, args, timeout=self._runtime_timeout)
        if res.returncode != 0:
            msg = runtime_message(res.stderr)
            if not is_not_found(msg):
                await check_runtime(
                    task.handler, ["delete", "-f", id], timeout=self._runtime_timeout
                )

    async def _await_pidfd(self, record: TaskRecord, fd: int) -> None:
        try:
            await procfs.wait_pidfd(fd, 5.0)
        except DeadlineExceeded:
            log.warning("conmon %d of %s lingers after delete", record.conmon_pid, record.id)

    def _remove_files(self, task_id: str, task_dir: Path, bundle: Path | None) -> None:
        for p in (self._exit_dir / task_id, self._socket_dir / task_id):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        if bundle is not None:
            for name in _CONMON_BUNDLE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (bundle / name).unlink()
        shutil.rmtree(task_dir, ignore_errors=True)

    # -- queries and operations on a live task ---------------------------------------------

    async def state(self, id: str) -> TaskState:
        """The runtime's view (``<runtime> state``): slow, for diagnostics and recovery only.
        UNKNOWN when the runtime no longer has the container."""
        task = self._get(id)
        try:
            res = await check_runtime(task.handler, ["state", id], timeout=self._runtime_timeout)
        except NotFound:
            return TaskState.UNKNOWN
        status = json.loads(res.stdout).get("status", "")
        try:
            return TaskState(status)
        except ValueError:
            return TaskState.UNKNOWN

    def info(self, id: str) -> TaskInfo:
        """The task's pids and creation time (from memory)."""
        return self._get(id).info()

    def attach_socket(self, id: str) -> Path:
        """conmon's attach socket of the task (a SOCK_SEQPACKET listener)."""
        self._get(id)
        return self._socket_dir / id / "attach"

    async def exec_sync(
        self,
        id: str,
        argv: Sequence[str],
        *,
        timeout: float | None,  # noqa: ASYNC109
        env: Sequence[str] = (),
        cwd: str | None = None,
        user: str | None = None,
        tty: bool = False,
    ) -> ExecResult:
        """Run ``argv`` in the task; stdout and stderr are kept apart. On timeout the process
        is killed and ``timed_out`` is True. FailedPrecondition when nothing could be started
        (no such binary, task not running)."""
        task = self._get(id)
        if not argv:
            raise InvalidArgument("exec needs a command")
        pid_file = task.task_dir / f"exec-{uuid.uuid4().hex[:12]}.pid"
        helper = await self.exec_helper()
        if helper is not None and self._exec_helper is not None and user is None and not tty:
            plan = await self._exec_plan(task)
            if isinstance(plan, fastexec.ExecPlan):
                cmd = fastexec.helper_argv(helper, plan, argv, pid_file=pid_file, env=env, cwd=cwd)
                try:
                    return await run_exec(
                        cmd,
                        pid_file=pid_file,
                        timeout=timeout,
                        what="exec",
                        exec_fd=self._exec_helper.fd,
                        started_fd_option="--started-fd",
                        retry_code=fastexec.HELPER_RETRY_CODE,
                        args_fd_option="--args-fd",
                    )
                except HelperFailed as exc:
                    # the command has not run: this call goes to runc exec
                    log.debug("task %s: ExecSync falls back to %s exec: %s", id,
                              task.handler.name, exc)  # fmt: skip
        return await _exec_sync(
            task.handler,
            id,
            argv,
            pid_file=pid_file,
            timeout=timeout,
            env=env,
            cwd=cwd,
            user=user,
            tty=tty,
        )

    async def exec_helper(self) -> Path | None:
        """The ``pinnace-exec`` binary once its build is over (awaited); None without one."""
        return await self._exec_helper.ready() if self._exec_helper is not None else None

    async def exec_plan(self, id: str) -> fastexec.ExecPlan | str:
        """How ExecSync runs in task ``id``: the helper's plan, or why ``runc exec`` must."""
        return await self._exec_plan(self._get(id))

    async def _exec_plan(self, task: _Task) -> fastexec.ExecPlan | str:
        """The task's exec plan, read once (runc's state file and the bundle's spec)."""
        plan = task.exec_plan
        if isinstance(plan, fastexec.ExecPlan) and plan.init_pid != task.record.pid:
            plan = None  # not this process's
        if plan is None:
            refusal = (
                self._exec_helper.refusal(task.handler.name)
                if self._exec_helper is not None
                else "no exec helper"
            )
            if task.handler.binary.name != "runc":
                plan = f"runtime {task.handler.binary.name} (the plan reads runc's state)"
            elif refusal is not None:
                plan = refusal
            else:
                plan = await asyncio.to_thread(
                    fastexec.load_plan,
                    task.handler.root / task.record.id / "state.json",
                    Path(task.record.bundle),
                    task.record.id,
                    nofile_soft_to_hard=self._exec_helper is not None
                    and self._exec_helper.nofile_soft_to_hard(task.handler.name),
                )
            if isinstance(plan, str):
                log.debug("task %s: ExecSync runs %s exec: %s", task.record.id,
                          task.handler.name, plan)  # fmt: skip
            else:
                log.debug("task %s: ExecSync runs pinnace-exec", task.record.id)
            task.exec_plan = plan
        return plan

    async def exec_session(
        self, id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False
    ) -> exec_session.ExecSession:
        """Start ``argv`` in the task under its own conmon, attached (see
        :mod:`runtime.tasks.exec_session`). The caller must ``release`` the session."""
        task = self._get(id)
        if not argv:
            raise InvalidArgument("exec needs a command")
        if self._hub.known(id) is not None:
            raise FailedPrecondition(f"task {id} has exited")
        return await exec_session.start(
            self._conmon,
            task.handler,
            exec_session.ExecSpec(id, tuple(argv), tty=tty, stdin=stdin),
            bundle=Path(task.record.bundle),
            execs_dir=self._execs_dir,
            socket_dir=self._socket_dir,
        )

    async def attach(self, id: str) -> AttachedStdio:
        """Connect to the task's conmon attach socket (its main process's stdio)."""
        self._get(id)
        if self._hub.known(id) is not None:
            raise FailedPrecondition(f"task {id} has exited")
        try:
            return await attach_connect(self.attach_socket(id))
        except OSError as e:
            raise FailedPrecondition(f"conmon of {id} does not accept attach: {e}") from e

    async def update(self, id: str, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``LinuxResources`` (``{"memory": {"limit": …}, "cpu": {…}}``) to the
        task (``<runtime> update --resources``)."""
        task = self._get(id)
        path = task.task_dir / f"resources-{uuid.uuid4().hex[:12]}.json"
        await asyncio.to_thread(path.write_text, json.dumps(dict(resources)))
        try:
            await check_runtime(
                task.handler,
                ["update", "--resources", str(path), id],
                timeout=self._runtime_timeout,
            )
        finally:
            # runc rewrote its state (update can add an Intel RDT group, for one): the next
            # exec reads it again, as runc exec does
            task.exec_plan = None
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)

    async def reopen_log(self, id: str, *, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Ask conmon to reopen the task's log path (after a rotation renamed it) and return
        once the new file is in place. FailedPrecondition when the task has exited."""
        task = self._get(id)
        if self._hub.known(id) is not None or not task.supervised:
            raise FailedPrecondition(f"task {id} is not running; its log is closed")
        log_path = Path(task.record.log_path)
        appeared = asyncio.get_running_loop().create_future()

        def seen(event: InotifyEvent) -> None:
            if event.name == log_path.name and not appeared.done():
                appeared.set_result(None)

        # conmon writes <log>.tmp then renames it onto <log>: watch for that name.
        with DirectoryWatch(log_path.parent, IN_MOVED_TO | IN_CREATE, seen):
            try:
                await asyncio.to_thread(
                    conmon_mod.signal_ctl, Path(task.record.bundle), _REOPEN_LOG
                )
            except OSError as e:
                raise FailedPrecondition(f"conmon of {id} is not listening: {e}") from e
            try:
                await asyncio.wait_for(appeared, timeout)
            except TimeoutError:
                raise DeadlineExceeded(f"conmon did not reopen the log of {id}") from None

    async def resize(self, id: str, *, rows: int, cols: int) -> None:
        """Resize the task's terminal (tty tasks only)."""
        task = self._get(id)
        try:
            await asyncio.to_thread(
                conmon_mod.signal_ctl, Path(task.record.bundle), f"1 {rows} {cols}\n"
            )
        except OSError as e:
            raise FailedPrecondition(f"conmon of {id} is not listening: {e}") from e

    def stats(self, id: str) -> cgroups.CgroupStats:
        """The task's cgroup figures. Blocking (a few small reads): call via to_thread."""
        task = self._get(id)
        if not task.record.cgroups_path or self._mounts is None:
            raise FailedPrecondition(f"task {id} has no cgroup path")
        return cgroups.read_stats(self._mounts, task.record.cgroups_path)

    def cgroups_path(self, id: str) -> str | None:
        """The bundle's ``linux.cgroupsPath`` as recorded at create."""
        return self._get(id).record.cgroups_path

    # -- recovery -------------------------------------------------------------------------

    async def recover(self) -> list[RecoveredTask]:
        """Find the tasks of a previous run in ``state_dir`` and watch their exits again.

        A conmon counts as alive only when its pid has the recorded start time. Tasks that
        exited meanwhile come back with ``exit`` set (not re-published to subscribers; the
        caller sees them in the result). Half-made tasks (a create interrupted before conmon
        reported) and tasks whose container no longer exists are removed."""
        entries = await asyncio.to_thread(self._scan)
        found: list[RecoveredTask] = []
        for name, record, seen in entries:
            if name in self._tasks:
                continue
            handler = self._handlers.get(record.runtime) if record else None
            try:
                if record is None or record.pid <= 0:
                    await self._remove_half_made(name, handler)
                    continue
                if handler is None:
                    log.warning("task %s uses unknown runtime %r; left alone", name, record.runtime)
                    continue
                rec = await self._recover_one(record, handler, seen)
            except Exception:
                # one task's trouble never keeps the daemon from starting; its owner reports
                # it as lost (it is not among the tasks found)
                log.exception("recovery of task %s failed", name)
                self._tasks.pop(name, None)
                continue
            if rec is not None:
                found.append(rec)
        return found

    def _scan(self) -> list[tuple[str, TaskRecord | None, _Seen | None]]:
        """Blocking: every task directory's record and, for a task that got as far as a
        conmon, whether that conmon is alive and the exit file (read after the liveness, as
        a conmon writes its exit file before it ends). One thread does all of it: a hop to a
        thread and back per task was most of a 100-pod restart's task recovery."""
        out: list[tuple[str, TaskRecord | None, _Seen | None]] = []
        for d in sorted(self._tasks_dir.iterdir()):
            if not d.is_dir():
                continue
            record = read_record(d)
            seen = None
            if record is not None and record.pid > 0:
                alive = procfs.is_running(record.conmon_pid, record.conmon_start_time)
                seen = _Seen(alive, self._read_exit(record.id, record.cgroups_path))
            out.append((d.name, record, seen))
        return out

    async def _remove_half_made(self, name: str, handler: RuntimeHandler | None) -> None:
        handlers = [handler] if handler else list(self._handlers.values())
        for h in handlers:
            await run_runtime(h, ["delete", "-f", name], timeout=self._runtime_timeout)
        log.info("removed half-made task %s", name)
        await asyncio.to_thread(self._remove_files, name, self._tasks_dir / name, None)

    async def _recover_one(
        self, record: TaskRecord, handler: RuntimeHandler, seen: _Seen | None
    ) -> RecoveredTask | None:
        task = _Task(record, handler, self._tasks_dir / record.id)
        if seen is None:  # not scanned with the others
            seen = await asyncio.to_thread(
                lambda: _Seen(
                    procfs.is_running(record.conmon_pid, record.conmon_start_time),
                    self._read_exit(record.id, record.cgroups_path),
                )
            )
        alive, exit = seen.conmon_alive, seen.exit
        self._tasks[record.id] = task
        if exit is not None:
            self._hub.preload(exit)
        elif alive:
            self._hub.expect(record.id)  # also catches an exit file written since the read
            self._conmons.watch(record.id, record.conmon_pid, record.conmon_start_time)
        else:
            # conmon died without an exit file: does the container still exist?
            res = await run_runtime(handler, ["state", record.id], timeout=30.0)
            if res.returncode != 0 and is_not_found(runtime_message(res.stderr)):
                self._tasks.pop(record.id, None)
                await asyncio.to_thread(
                    self._remove_files, record.id, task.task_dir, Path(record.bundle)
                )
                return None
            await self._orphaned(task)
            exit = await asyncio.to_thread(self._read_exit, record.id, record.cgroups_path)
            if exit is not None:
                self._hub.preload(exit)
        return RecoveredTask(
            info=task.info(),
            runtime=record.runtime,
            bundle=Path(record.bundle),
            log_path=Path(record.log_path),
            exit=exit,
            conmon_alive=alive,
        )

    def _read_exit(self, task_id: str, cgroups_path: str | None) -> ExitFact | None:
        """Blocking: the task's exit file as an exit fact, None while it has none."""
        got = read_exit_code(self._exit_dir / task_id)
        if got is None:
            return None
        oom = self._cgroup_saw_oom(cgroups_path)
        return ExitFact(task_id, got[0], got[1], oom, self._lost_probe(task_id))

    # -- supervisors that die first --------------------------------------------------------

    def _conmon_gone(self, task_id: str) -> None:
        """ConmonWatch's callback (on the loop): a task's conmon has ended."""
        t = asyncio.get_running_loop().create_task(self._after_conmon(task_id))
        self._orphan_tasks.add(t)
        t.add_done_callback(self._orphan_tasks.discard)

    async def _after_conmon(self, task_id: str) -> None:
        task = self._tasks.get(task_id)
        if task is None or not task.supervised or self._hub.known(task_id) is not None:
            return
        exit_file = self._exit_dir / task_id
        if await asyncio.to_thread(read_exit_code, exit_file) is not None:
            self._hub.expect(task_id)  # the normal end: conmon wrote the exit, then left
            return
        log.warning(
            "conmon %d of task %s died before its process; killing the orphan",
            task.record.conmon_pid,
            task_id,
        )
        try:
            await self._orphaned(task)
        except Exception:
            log.exception("could not clean up after the conmon of task %s", task_id)
            return
        self._hub.expect(task_id)  # reads the exit file just written and publishes it

    async def _orphaned(self, task: _Task) -> None:
        """Kill the process of a task whose conmon is dead and record its exit durably (the
        hub then resolves it like any exit: waiters and subscribers learn it once)."""
        # every process of the task's cgroup (a container sharing a PID namespace has more
        # than its init), then the init itself through a pidfd, awaited
        await run_runtime(
            task.handler, ["kill", "--all", task.record.id, "9"], timeout=self._runtime_timeout
        )
        await kill_orphan(task.record)
        await asyncio.to_thread(write_lost_exit, task.task_dir, self._exit_dir / task.record.id)

    def _lost_probe(self, task_id: str) -> bool:
        """Blocking: was the task's exit file written for a dead conmon?"""
        return supervisor_lost(self._tasks_dir / task_id)

    # -- helpers --------------------------------------------------------------------------

    def _get(self, id: str) -> _Task:
        task = self._tasks.get(id)
        if task is None:
            raise NotFound(f"task {id} not found")
        return task

    def _oom_probe(self, task_id: str) -> bool:
        """Blocking: did the task's cgroup see an OOM kill? (runs on a thread)"""
        task = self._tasks.get(task_id)
        return self._cgroup_saw_oom(task.record.cgroups_path if task else None)

    def _cgroup_saw_oom(self, path: str | None) -> bool:
        """Blocking: did the cgroup at ``path`` see an OOM kill?"""
        if not path or self._mounts is None:
            return False
        return cgroups.read_oom_kills(self._mounts, path) > 0
