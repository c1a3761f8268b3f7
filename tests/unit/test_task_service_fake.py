"""The shipped fake task service keeps the TaskService contract: same methods and parameters as
the Protocol (and so as TaskManager), one exit fact per task, NotFound for unknown ids,
idempotent delete."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from runtime.errors import FailedPrecondition, NotFound
from runtime.tasks.interfaces import TaskService, TaskSpec
from runtime.tasks.manager import TaskManager
from tests.support.tasks import FakeTaskService

_MEMBERS = [
    name
    for name, value in vars(TaskService).items()
    if callable(value) and not name.startswith("_")
]


@pytest.mark.parametrize("implementation", [FakeTaskService, TaskManager])
@pytest.mark.parametrize("name", _MEMBERS)
def test_every_protocol_member_is_there_with_its_parameters(
    implementation: type, name: str
) -> None:
    wanted = inspect.signature(getattr(TaskService, name)).parameters
    have = inspect.signature(getattr(implementation, name)).parameters
    assert list(have)[: len(wanted)] == list(wanted)
    assert inspect.iscoroutinefunction(getattr(implementation, name)) == (
        inspect.iscoroutinefunction(getattr(TaskService, name))
    )


def _spec(id: str = "t1") -> TaskSpec:
    return TaskSpec(id=id, bundle=Path("/b"), runtime="runc", log_path=Path("/l"))


async def test_the_fake_follows_the_lifecycle() -> None:
    tasks = FakeTaskService()
    seen = []
    tasks.on_exit(seen.append)
    info = await tasks.create(_spec())
    await tasks.start("t1")
    with pytest.raises(FailedPrecondition):
        await tasks.start("t1")
    first = tasks.exit("t1", exit_code=3)
    assert tasks.exit("t1", exit_code=9) == first  # one exit fact per task
    assert seen == [first]
    assert await tasks.wait("t1", timeout=1) == first
    assert (await tasks.stop("t1", timeout=0)).exit_code == 3
    await tasks.delete("t1")
    await tasks.delete("t1")  # idempotent
    with pytest.raises(NotFound):
        await tasks.start("t1")
    assert info.pid > 0


async def test_the_fake_fails_on_demand() -> None:
    tasks = FakeTaskService()
    tasks.fail("create", FailedPrecondition("runc: boom"))
    with pytest.raises(FailedPrecondition, match="boom"):
        await tasks.create(_spec())
    await tasks.create(_spec())  # only the next call failed
    assert tasks.calls == [("create", "t1"), ("create", "t1")]
