"""The sandbox and container lifecycle tables (runtime/model/lifecycle.py): every pair the
table has no row for is refused with FailedPrecondition naming the state; the rows say the
next state and the event."""

from __future__ import annotations

import itertools

import pytest

from runtime.errors import FailedPrecondition
from runtime.events.types import EVENT_TYPES
from runtime.model.lifecycle import (
    CONTAINER_TABLE,
    SANDBOX_TABLE,
    ContainerAction,
    ContainerState,
    SandboxAction,
    SandboxState,
    allowed_container_actions,
    container_step,
    sandbox_step,
)

_ILLEGAL_CONTAINER = [
    pair
    for pair in itertools.product(ContainerState, ContainerAction)
    if pair not in CONTAINER_TABLE
]
_ILLEGAL_SANDBOX = [
    pair for pair in itertools.product(SandboxState, SandboxAction) if pair not in SANDBOX_TABLE
]


@pytest.mark.parametrize(("state", "action"), _ILLEGAL_CONTAINER)
def test_every_illegal_container_transition_names_the_state(
    state: ContainerState, action: ContainerAction
) -> None:
    with pytest.raises(FailedPrecondition, match=f"container c1 is {state.value}: "):
        container_step(state, action, id="c1")


@pytest.mark.parametrize(("state", "action"), _ILLEGAL_SANDBOX)
def test_every_illegal_sandbox_transition_names_the_state(
    state: SandboxState, action: SandboxAction
) -> None:
    with pytest.raises(FailedPrecondition, match=f"pod sandbox s1 is {state.value}: "):
        sandbox_step(state, action, id="s1")


def test_the_tables_have_illegal_pairs_to_refuse() -> None:
    assert len(_ILLEGAL_CONTAINER) > 10 and _ILLEGAL_SANDBOX


def test_the_container_lifecycle() -> None:
    step = container_step(ContainerState.CREATED, ContainerAction.START)
    assert (step.state, step.topic, step.changes) == (ContainerState.RUNNING, "/tasks/start", True)
    step = container_step(ContainerState.RUNNING, ContainerAction.EXIT)
    assert (step.state, step.topic) == (ContainerState.EXITED, "/tasks/exit")
    again = container_step(ContainerState.EXITED, ContainerAction.EXIT)
    assert (again.changes, again.topic) == (False, None)  # a second report: nothing to say
    assert allowed_container_actions(ContainerState.RUNNING) >= {
        ContainerAction.EXEC,
        ContainerAction.ATTACH,
        ContainerAction.UPDATE,
    }
    assert ContainerAction.EXEC not in allowed_container_actions(ContainerState.CREATED)


def test_the_sandbox_lifecycle() -> None:
    step = sandbox_step(SandboxState.READY, SandboxAction.STOP)
    assert (step.state, step.topic) == (SandboxState.NOTREADY, "/sandboxes/stop")
    again = sandbox_step(SandboxState.NOTREADY, SandboxAction.STOP)
    assert (again.changes, again.topic) == (False, None)


def test_every_topic_in_the_tables_is_an_event_type() -> None:
    topics = {topic for _, topic in [*CONTAINER_TABLE.values(), *SANDBOX_TABLE.values()]}
    assert topics - {None} <= set(EVENT_TYPES)
