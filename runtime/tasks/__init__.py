"""Tasks: OCI containers run by runc or crun under conmon supervisors.

Start at :mod:`runtime.tasks.interfaces` (terms, lifecycle, the TaskService protocol) and
:class:`runtime.tasks.manager.TaskManager` (the implementation).
"""

from runtime.tasks.interfaces import (
    ExecResult,
    ExitFact,
    RecoveredTask,
    RuntimeHandler,
    TaskInfo,
    TaskService,
    TaskSpec,
    TaskState,
)
from runtime.tasks.manager import TaskManager

__all__ = [
    "ExecResult",
    "ExitFact",
    "RecoveredTask",
    "RuntimeHandler",
    "TaskInfo",
    "TaskManager",
    "TaskService",
    "TaskSpec",
    "TaskState",
]
