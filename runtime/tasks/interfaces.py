"""The task vocabulary and the service the CRI layer calls.

Terms:

- **task**: one OCI container run by an OCI runtime (runc, crun) under a **conmon** supervisor.
  Its id is the runtime's container id. A task is *created* (``runtime create``: namespaces,
  cgroup and mounts exist, the user process is not yet exec'd), *started* (``runtime start``:
  the process runs), *exited* (conmon has written the **exit file**) and finally *deleted*
  (``runtime delete``: nothing of it remains).
- **runtime handler**: a named OCI runtime binary with its own state root (the CRI's
  RuntimeClass handler). Handlers are configuration, not code.
- **conmon**: the per-task supervisor process. It daemonizes, so a task outlives the daemon;
  it holds the container's stdio, writes the CRI log file and, when the container's process
  ends, the exit file ``<exit dir>/<id>`` holding the exit code.
- **exit fact**: a :class:`ExitFact`, published once per task when its exit file appears.
- **CRI log format**: conmon writes ``<RFC3339Nano time> <stdout|stderr> <P|F> <text>`` lines,
  ``P`` for a partial line (split by conmon's buffer), ``F`` for a full one.

Lifecycle::

    create ──► CREATED ──start──► RUNNING ──(process ends | kill/stop)──► STOPPED ──delete──► gone
                 │                                                           ▲
                 └────────────────────────── kill ───────────────────────────┘
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runtime.errors import InvalidArgument

if TYPE_CHECKING:  # the stdio types name this module's; imported for annotations only
    from runtime.tasks.attach import AttachedStdio
    from runtime.tasks.exec_session import ExecSession


@dataclass(frozen=True, slots=True)
class RuntimeHandler:
    """An OCI runtime: ``name`` as the CRI's handler, the ``binary`` (runc or a runc-compatible
    CLI such as crun) and the ``root`` directory where that runtime keeps container state."""

    name: str
    binary: Path
    root: Path


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What ``create`` needs: the OCI ``bundle`` (a directory with ``config.json`` and the
    rootfs it names), the runtime handler's name and the CRI log file path. ``stdin`` keeps a
    pipe to the container's stdin for attach; ``stdin_once`` closes it after the first attach
    detaches; ``tty`` allocates a terminal (the bundle's ``process.terminal`` must agree).
    ``log_size_max`` > 0 truncates the log file at that many bytes (conmon's rule)."""

    id: str
    bundle: Path
    runtime: str
    log_path: Path
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    log_size_max: int = -1

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id or self.id in (".", "..") or len(self.id) > 64:
            raise InvalidArgument(f"bad task id {self.id!r}")
        if not self.bundle.is_absolute() or not self.log_path.is_absolute():
            raise InvalidArgument("bundle and log path must be absolute")
        if ":" in str(self.log_path):
            raise InvalidArgument("conmon cannot take a log path containing ':'")


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A created task: the container's init ``pid`` (host pid namespace), its conmon's pid and
    that conmon's start time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot), which
    tells a live conmon from a process that reused its pid; ``created_at`` in ns since epoch."""

    id: str
    pid: int
    conmon_pid: int
    conmon_start_time: int
    created_at: int


class TaskState(enum.Enum):
    """What the OCI runtime says of a task (``runc state``)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ExitFact:
    """The exit fact: the process's exit code (128+N when killed by signal N), when it was
    recorded (the exit file's mtime, ns since epoch) and whether the cgroup's OOM kill counter
    was non-zero at that moment. ``supervisor_lost`` is True when the task's conmon died
    before its process ended: the manager then killed the process itself (exit code 137) and
    wrote the exit file in conmon's place, as containerd does for a task whose shim died."""

    id: str
    exit_code: int
    exited_at: int
    oom_killed: bool = False
    supervisor_lost: bool = False


@dataclass(frozen=True, slots=True)
class ExecResult:
    """The outcome of a synchronous exec. On timeout the process was killed, ``timed_out`` is
    True and ``exit_code`` is what the kill produced (usually 137)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class RecoveredTask:
    """A task found again after a daemon restart. ``exit`` is set when the task had already
    exited (its exit file exists, or its conmon was found dead and the manager killed the
    process: then ``exit.supervisor_lost``). ``conmon_alive`` tells whether its conmon was
    found alive. ``log_path`` and ``bundle`` come from the state file."""

    info: TaskInfo
    runtime: str
    bundle: Path
    log_path: Path
    exit: ExitFact | None
    conmon_alive: bool


ExitCallback = Callable[[ExitFact], Any]


class TaskService(Protocol):
    """The task operations the CRI layer uses. Every method is a coroutine that does its
    blocking work off the event loop. Ids not known to the service raise NotFound, except
    ``delete`` (idempotent)."""

    async def create(self, spec: TaskSpec) -> TaskInfo:
        """Create the task (``runtime create`` under a new conmon), making the directory of
        ``spec.log_path`` if missing; FailedPrecondition carries the runtime's message when it
        fails; AlreadyExists for a live id."""
        ...

    async def start(self, id: str) -> None:
        """Run the created task's process."""
        ...

    async def kill(self, id: str, signal: int, *, all_processes: bool = False) -> None:
        """Send ``signal`` to the task's init (or every process of it)."""
        ...

    async def stop(self, id: str, *, timeout: float, signal: int = ...) -> ExitFact:  # noqa: ASYNC109
        """Signal, wait up to ``timeout`` s for the exit, then SIGKILL and wait."""
        ...

    async def delete(self, id: str, *, force: bool = False) -> None:
        """Remove an exited task (``force`` kills a live one first). Unknown ids are fine."""
        ...

    async def state(self, id: str) -> TaskState:
        """Ask the runtime (slow path: never for list/status RPCs)."""
        ...

    async def wait(self, id: str, timeout: float | None = None) -> ExitFact:  # noqa: ASYNC109
        """Await the exit fact (DeadlineExceeded after ``timeout`` s)."""
        ...

    def exits(self) -> AsyncGenerator[ExitFact, None]:
        """Every exit fact published from now on."""
        ...

    def on_exit(self, callback: ExitCallback) -> Callable[[], None]:
        """Call ``callback`` with each exit fact; returns the function that unsubscribes."""
        ...

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
        """Run ``argv`` in the task and collect its stdout, stderr and exit code."""
        ...

    async def update(self, id: str, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``LinuxResources`` to the running task."""
        ...

    async def reopen_log(self, id: str) -> None:
        """Make conmon reopen the log path; the new file exists when this returns."""
        ...

    async def exec_session(
        self, id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False
    ) -> ExecSession:
        """Start ``argv`` in the task under its own conmon, attached (streaming exec)."""
        ...

    async def attach(self, id: str) -> AttachedStdio:
        """Connect to the task's main process's stdio (conmon's attach socket)."""
        ...

    async def resize(self, id: str, *, rows: int, cols: int) -> None:
        """Resize the task's terminal (tty tasks only)."""
        ...

    def cgroups_path(self, id: str) -> str | None:
        """The bundle's ``linux.cgroupsPath`` as recorded at create."""
        ...

    def info(self, id: str) -> TaskInfo:
        """The task's pids and creation time, from memory (NotFound for an unknown id)."""
        ...

    async def recover(self) -> list[RecoveredTask]:
        """Find the tasks of a previous daemon run and watch their exits again."""
        ...
