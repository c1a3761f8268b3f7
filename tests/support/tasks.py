"""An in-memory :class:`runtime.tasks.interfaces.TaskService` for unit tests (no runc, no
conmon, no processes), in the spirit of httpx's ``MockTransport``: it follows the service's
contract (lifecycle, NotFound for unknown ids, idempotent delete, one exit fact per task) and
lets a test decide what the "runtime" does.

    tasks = FakeTaskService()
    tasks.fail("start", FailedPrecondition("exec: sleep: not found"))   # the next start fails
    info = await tasks.create(spec)          # CREATED, pid 1000+
    await tasks.start(spec.id)               # RUNNING
    tasks.exit(spec.id, exit_code=3)         # the process ends: exit fact to waiters/callbacks
    tasks.recovered = [...]                  # what ``recover`` reports after a "restart"

``calls`` records every call as ``(operation, id)`` so tests can assert what was asked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import AlreadyExists, DeadlineExceeded, FailedPrecondition, NotFound
from runtime.tasks.interfaces import (
    ExecResult,
    ExitCallback,
    ExitFact,
    RecoveredTask,
    TaskInfo,
    TaskSpec,
    TaskState,
)

__all__ = ["FakeTask", "FakeTaskService"]


@dataclass
class FakeTask:
    """One task of the fake: its spec, info, state and (once it ended) its exit."""

    spec: TaskSpec
    info: TaskInfo
    state: TaskState = TaskState.CREATED
    exit: ExitFact | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    cgroups_path: str | None = None
    terminal: tuple[int, int] | None = None


def _cgroups_path(spec: TaskSpec) -> str | None:
    try:
        config = json.loads((spec.bundle / "config.json").read_text())
    except (OSError, ValueError):
        return None
    path = config.get("linux", {}).get("cgroupsPath")
    return path if isinstance(path, str) else None


class FakeTaskService:
    """Tasks as records in memory. Every coroutine yields to the loop once, as the real service
    does, so interleavings (an exit during a start) can be tested."""

    def __init__(self) -> None:
        self.tasks: dict[str, FakeTask] = {}
        self.calls: list[tuple[str, str]] = []
        self.recovered: list[RecoveredTask] = []
        self.exec_results: dict[str, ExecResult] = {}
        self._failures: dict[str, list[BaseException]] = {}
        self._callbacks: list[ExitCallback] = []
        self._waiters: dict[str, list[asyncio.Future[ExitFact]]] = {}
        self._streams: list[asyncio.Queue[ExitFact]] = []
        self._pids = itertools.count(1000)

    # ---- what a test controls ----------------------------------------------------------

    def fail(self, operation: str, error: BaseException, *, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` (``create``, ``start``, ``stop``, ``kill``,
        ``delete``, ``exec_sync``, ``update``, ``reopen_log``, ``recover``) raise ``error``."""
        self._failures.setdefault(operation, []).extend([error] * times)

    def exit(self, id: str, *, exit_code: int = 0, oom_killed: bool = False) -> ExitFact:
        """The task's process ends now: record it and hand the exit fact out once."""
        task = self._get(id)
        if task.exit is not None:
            return task.exit
        fact = ExitFact(id=id, exit_code=exit_code, exited_at=time.time_ns(), oom_killed=oom_killed)
        task.exit = fact
        task.state = TaskState.STOPPED
        for waiter in self._waiters.pop(id, []):
            if not waiter.done():
                waiter.set_result(fact)
        for queue in self._streams:
            queue.put_nowait(fact)
        for callback in list(self._callbacks):
            callback(fact)
        return fact

    def live(self) -> set[str]:
        """Ids of tasks that exist (not deleted)."""
        return set(self.tasks)

    # ---- the TaskService contract -------------------------------------------------------

    async def _enter(self, operation: str, id: str) -> None:
        self.calls.append((operation, id))
        await asyncio.sleep(0)  # yield once, like real I/O; waits for nothing
        pending = self._failures.get(operation)
        if pending:
            raise pending.pop(0)

    def _get(self, id: str) -> FakeTask:
        task = self.tasks.get(id)
        if task is None:
            raise NotFound(f"task {id} not found")
        return task

    async def create(self, spec: TaskSpec) -> TaskInfo:
        await self._enter("create", spec.id)
        if spec.id in self.tasks:
            raise AlreadyExists(f"task {spec.id} already exists")
        info = TaskInfo(
            id=spec.id,
            pid=next(self._pids),
            conmon_pid=next(self._pids),
            conmon_start_time=0,
            created_at=time.time_ns(),
        )
        self.tasks[spec.id] = FakeTask(spec=spec, info=info, cgroups_path=_cgroups_path(spec))
        return info

    async def start(self, id: str) -> None:
        await self._enter("start", id)
        task = self._get(id)
        if task.state != TaskState.CREATED:
            raise FailedPrecondition(f"task {id} is {task.state.value}, not created")
        task.state = TaskState.RUNNING

    async def kill(self, id: str, signal: int, *, all_processes: bool = False) -> None:
        await self._enter("kill", id)
        task = self._get(id)
        if task.exit is None:
            self.exit(id, exit_code=128 + signal)

    async def stop(self, id: str, *, timeout: float, signal: int = 15) -> ExitFact:  # noqa: ASYNC109
        await self._enter("stop", id)
        task = self._get(id)
        if task.exit is not None:
            return task.exit
        return self.exit(id, exit_code=128 + signal)

    async def delete(self, id: str, *, force: bool = False) -> None:
        await self._enter("delete", id)
        task = self.tasks.get(id)
        if task is None:
            return
        if task.exit is None and task.state == TaskState.RUNNING and not force:
            raise FailedPrecondition(f"task {id} is running; stop it or delete with force")
        del self.tasks[id]

    async def state(self, id: str) -> TaskState:
        await self._enter("state", id)
        return self._get(id).state

    async def wait(self, id: str, timeout: float | None = None) -> ExitFact:  # noqa: ASYNC109
        task = self._get(id)
        if task.exit is not None:
            return task.exit
        waiter: asyncio.Future[ExitFact] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(id, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"task {id} did not exit within {timeout}s") from None

    async def exits(self) -> AsyncGenerator[ExitFact, None]:
        queue: asyncio.Queue[ExitFact] = asyncio.Queue()
        self._streams.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._streams.remove(queue)

    def on_exit(self, callback: ExitCallback) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

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
        await self._enter("exec_sync", id)
        task = self._get(id)
        if task.state != TaskState.RUNNING:
            raise FailedPrecondition(f"task {id} is not running")
        return self.exec_results.get(" ".join(argv), ExecResult(0, b"", b""))

    async def update(self, id: str, resources: Mapping[str, Any]) -> None:
        await self._enter("update", id)
        self._get(id).resources = dict(resources)

    async def reopen_log(self, id: str) -> None:
        await self._enter("reopen_log", id)
        self._get(id)

    async def exec_session(
        self, id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False
    ) -> Any:
        """Streaming needs real stdio: the fake has none (use the e2e tests for streams)."""
        await self._enter("exec_session", id)
        self._get(id)
        raise FailedPrecondition("the fake task service has no stdio to stream")

    async def attach(self, id: str) -> Any:
        await self._enter("attach", id)
        self._get(id)
        raise FailedPrecondition("the fake task service has no stdio to attach to")

    async def resize(self, id: str, *, rows: int, cols: int) -> None:
        await self._enter("resize", id)
        self._get(id).terminal = (rows, cols)

    def cgroups_path(self, id: str) -> str | None:
        """The bundle's ``linux.cgroupsPath`` at create (None when it had no spec)."""
        return self._get(id).cgroups_path

    def info(self, id: str) -> TaskInfo:
        return self._get(id).info

    async def recover(self) -> list[RecoveredTask]:
        await self._enter("recover", "")
        return list(self.recovered)
