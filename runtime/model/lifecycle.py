"""The lifecycles of pod sandboxes and containers: each an enum of states and one table.

Container::

    (create) ──► CREATED ──start──► RUNNING ──exit / lost──► EXITED ──remove──► (gone)
                    │                                          ▲
                    └──── start_failed / exit / lost ──────────┘

    exec, attach, reopen_log: RUNNING only.   update: CREATED or RUNNING.
    UNKNOWN (a record that lost track of its task) may still exit or be lost.
    exit or lost in EXITED: a second report of the end, which changes nothing (not an error).
    stop and remove: any state (the CRI makes them idempotent; remove stops a running one).

Sandbox::

    (run) ──► READY ──stop──► NOTREADY ──remove──► (gone)

    create_container, start_container: READY only.   stop in NOTREADY: changes nothing.

Each table row says, for a state and an action, the state after it and the event that reports
it (``None``: nothing is published). An action a state has no row for is illegal:
:func:`container_step` and :func:`sandbox_step` raise FailedPrecondition naming the object, its
state and what the state allows, and change nothing. The controllers apply every state change
through these functions and publish the event the row names, so what a status reports and what
an event says come from the same table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, TypeVar

from runtime.errors import FailedPrecondition


class ContainerState(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class SandboxState(enum.Enum):
    READY = "ready"
    NOTREADY = "notready"


class ContainerAction(enum.Enum):
    START = "start"
    START_FAILED = "start_failed"
    EXIT = "exit"
    LOST = "lost"
    EXEC = "exec"
    ATTACH = "attach"
    REOPEN_LOG = "reopen_log"
    UPDATE = "update"


class SandboxAction(enum.Enum):
    STOP = "stop"
    CREATE_CONTAINER = "create_container"
    START_CONTAINER = "start_container"


S = TypeVar("S", "ContainerState", "SandboxState")


@dataclass(frozen=True, slots=True)
class Step(Generic[S]):
    """One table row's outcome: the state after the action and the topic of the event that
    reports it (None: no event). ``changes`` is false for a row that leaves the state as is."""

    state: S
    topic: str | None
    changes: bool


_C = ContainerState
_CA = ContainerAction
CONTAINER_TABLE: Mapping[tuple[ContainerState, ContainerAction], tuple[ContainerState, str | None]]
CONTAINER_TABLE = MappingProxyType(
    {
        (_C.CREATED, _CA.START): (_C.RUNNING, "/tasks/start"),
        (_C.CREATED, _CA.START_FAILED): (_C.EXITED, None),
        (_C.CREATED, _CA.EXIT): (_C.EXITED, "/tasks/exit"),
        (_C.CREATED, _CA.LOST): (_C.EXITED, None),
        (_C.CREATED, _CA.UPDATE): (_C.CREATED, "/containers/update"),
        (_C.RUNNING, _CA.EXIT): (_C.EXITED, "/tasks/exit"),
        (_C.RUNNING, _CA.LOST): (_C.EXITED, None),
        (_C.RUNNING, _CA.EXEC): (_C.RUNNING, None),
        (_C.RUNNING, _CA.ATTACH): (_C.RUNNING, None),
        (_C.RUNNING, _CA.REOPEN_LOG): (_C.RUNNING, None),
        (_C.RUNNING, _CA.UPDATE): (_C.RUNNING, "/containers/update"),
        (_C.EXITED, _CA.EXIT): (_C.EXITED, None),  # the second report of one exit
        (_C.EXITED, _CA.LOST): (_C.EXITED, None),  # its fate is known already
        (_C.UNKNOWN, _CA.EXIT): (_C.EXITED, "/tasks/exit"),
        (_C.UNKNOWN, _CA.LOST): (_C.EXITED, None),
    }
)

_S = SandboxState
_SA = SandboxAction
SANDBOX_TABLE: Mapping[tuple[SandboxState, SandboxAction], tuple[SandboxState, str | None]]
SANDBOX_TABLE = MappingProxyType(
    {
        (_S.READY, _SA.STOP): (_S.NOTREADY, "/sandboxes/stop"),
        (_S.NOTREADY, _SA.STOP): (_S.NOTREADY, None),
        (_S.READY, _SA.CREATE_CONTAINER): (_S.READY, None),
        (_S.READY, _SA.START_CONTAINER): (_S.READY, None),
    }
)

# What to tell a caller whose action the state does not allow, after "<what> <id> is <state>: "
_CONTAINER_REFUSALS = {
    _CA.START: "only a created container can be started",
    _CA.START_FAILED: "only a created container can fail to start",
    _CA.EXIT: "it cannot exit",
    _CA.LOST: "only a created or running container can be lost",
    _CA.EXEC: "only a running container can exec",
    _CA.ATTACH: "only a running container can be attached to",
    _CA.REOPEN_LOG: "only a running container has a log to reopen",
    _CA.UPDATE: "the resources of an exited container cannot change",
}
_SANDBOX_REFUSALS = {
    _SA.STOP: "it cannot be stopped",
    _SA.CREATE_CONTAINER: "it was stopped; create a new one",
    _SA.START_CONTAINER: "it was stopped",
}


def allowed_container_actions(state: ContainerState) -> frozenset[ContainerAction]:
    return frozenset(action for (s, action) in CONTAINER_TABLE if s == state)


def allowed_sandbox_actions(state: SandboxState) -> frozenset[SandboxAction]:
    return frozenset(action for (s, action) in SANDBOX_TABLE if s == state)


def container_step(
    state: ContainerState, action: ContainerAction, *, id: str = ""
) -> Step[ContainerState]:
    """The container table's row for ``state`` and ``action``; FailedPrecondition naming the
    state when there is none."""
    row = CONTAINER_TABLE.get((state, action))
    if row is None:
        raise FailedPrecondition(f"container {id} is {state.value}: {_CONTAINER_REFUSALS[action]}")
    return Step(state=row[0], topic=row[1], changes=row[0] != state)


def sandbox_step(state: SandboxState, action: SandboxAction, *, id: str = "") -> Step[SandboxState]:
    """The sandbox table's row for ``state`` and ``action``; FailedPrecondition naming the
    state when there is none."""
    row = SANDBOX_TABLE.get((state, action))
    if row is None:
        raise FailedPrecondition(f"pod sandbox {id} is {state.value}: {_SANDBOX_REFUSALS[action]}")
    return Step(state=row[0], topic=row[1], changes=row[0] != state)
