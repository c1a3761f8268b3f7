"""The per-task state file: what a restarted daemon needs to find a task again.

Layout under the manager's state directory::

    tasks/<id>/state.json   this record (written atomically: temp file, rename)
    tasks/<id>/conmon.pid   written by conmon (its daemonized pid)
    tasks/<id>/pid          written by the runtime (the container's init pid)
    tasks/<id>/supervisor-lost  written by the manager when conmon died before the process
                            ended (it then killed the process and wrote the exit file itself)
    exits/<id>              written by conmon when the process ends: the exit code
    sockets/<id>            conmon's symlink to the bundle, where its attach socket lives

A record with ``pid == 0`` was written before conmon reported back: the daemon died in the
middle of ``create``, and recovery removes whatever the runtime made of it.

Durability: a written record survives the daemon's death (the page cache outlives the process;
the rename makes it whole or absent), which is what recovery needs; ``tests/e2e`` crash points
kill the daemon at every step to prove it. No fsync: the state directory does not outlive a
boot (its default ``/run/pinnace`` is a tmpfs, where fsync does nothing) and neither do the
tasks it describes; runc writes its own state there the same way. An unreadable record after a
power cut is a half-made task to recovery.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from runtime.errors import InvalidArgument

STATE_FILE = "state.json"
SUPERVISOR_LOST_FILE = "supervisor-lost"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """The durable facts of one task (see :class:`runtime.tasks.interfaces.TaskInfo` for the
    pid and start-time terms). ``cgroups_path`` is the bundle's ``linux.cgroupsPath`` or
    None. ``start_time`` is the container process's own start time (0 in records written
    before it was kept), so it is never mistaken for a process that reused its pid."""

    id: str
    runtime: str
    bundle: str
    log_path: str
    cgroups_path: str | None
    pid: int
    conmon_pid: int
    conmon_start_time: int
    created_at: int
    start_time: int = 0

    def to_json(self) -> bytes:
        """Serialise for the state file."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TaskRecord:
        """Parse a state file; InvalidArgument when it is not one of ours."""
        try:
            obj = json.loads(data)
            return cls(
                id=str(obj["id"]),
                runtime=str(obj["runtime"]),
                bundle=str(obj["bundle"]),
                log_path=str(obj["log_path"]),
                cgroups_path=obj.get("cgroups_path"),
                pid=int(obj["pid"]),
                conmon_pid=int(obj["conmon_pid"]),
                conmon_start_time=int(obj["conmon_start_time"]),
                created_at=int(obj["created_at"]),
                start_time=int(obj.get("start_time", 0)),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidArgument(f"bad task state file: {e}") from e


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a torn
    one, also after the daemon is killed (no fsync: see the module's note). Blocking."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_record(task_dir: Path) -> TaskRecord | None:
    """The record in ``task_dir``, or None when it has none or an unreadable one. Blocking."""
    try:
        return TaskRecord.from_json((task_dir / STATE_FILE).read_bytes())
    except (FileNotFoundError, InvalidArgument):
        return None


def read_exit_code(path: Path) -> tuple[int, int] | None:
    """(exit code, mtime in ns) from a conmon exit file, or None when it is absent or not yet
    complete. Blocking."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            text = f.read().strip()
    except FileNotFoundError:
        return None
    try:
        return int(text), st.st_mtime_ns
    except ValueError:
        return None
