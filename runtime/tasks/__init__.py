"""Tasks: OCI containers run by runc or crun under conmon supervisors.

Start at :mod:`runtime.tasks.interfaces` (terms, lifecycle, the TaskService protocol) and
:class:`runtime.tasks.manager.TaskManager` (the implementation).
"""

from runtime.tasks.interfaces import (
    ExecResult,
    RecoveredTask,
    RuntimeHandler,
    TaskExit,
    TaskInfo,
    TaskService,
    TaskSpec,
    TaskState,
)
from runtime.tasks.manager import TaskManager

__all__ = [
    "ExecResult",
    "RecoveredTask",
    "RuntimeHandler",
    "TaskExit",
    "TaskInfo",
    "TaskManager",
    "TaskService",
    "TaskSpec",
    "TaskState",
]
