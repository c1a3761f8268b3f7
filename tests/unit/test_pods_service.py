"""PodService over the controllers (tests/support/pods.py): whole pods stopped and removed, and
recovery after a restart reconciling records with the tasks found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.model.pods import ContainerState, NamespaceMode, SandboxState
from runtime.tasks.interfaces import ExitFact, RecoveredTask, TaskInfo
from tests.support.pods import PodLayer


@pytest.fixture
def layer(tmp_path: Path) -> Iterator[PodLayer]:
    built = PodLayer.build(tmp_path)
    yield built
    built.close()


async def test_stop_sandbox_stops_its_containers_then_the_sandbox(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web"))
    a = await layer.containers.create(sandbox.id, layer.container("a"))
    b = await layer.containers.create(sandbox.id, layer.container("b"))
    await layer.containers.start(a.id)
    await layer.service.stop_sandbox(sandbox.id)
    assert layer.containers.get(a.id).state == ContainerState.EXITED
    assert layer.containers.get(b.id).state == ContainerState.CREATED  # never started
    record = layer.store.sandboxes.get(sandbox.id)
    assert record is not None and record.state == SandboxState.NOTREADY


async def test_remove_sandbox_leaves_nothing(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web", pid=NamespaceMode.POD))
    for name in ("a", "b"):
        container = await layer.containers.create(sandbox.id, layer.container(name))
        await layer.containers.start(container.id)
    await layer.service.remove_sandbox(sandbox.id)
    assert layer.leftovers() == []
    await layer.service.remove_sandbox(sandbox.id)  # unknown ids are fine


async def test_remove_container_of_a_pod(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web"))
    container = await layer.containers.create(sandbox.id, layer.container("a"))
    await layer.containers.start(container.id)
    await layer.service.remove_container(container.id)
    assert layer.store.containers_of(sandbox.id) == []
    assert layer.tasks.live() == set()


def _recovered(
    layer: PodLayer, container_id: str, *, exit: ExitFact | None, alive: bool
) -> RecoveredTask:
    task = layer.tasks.tasks[container_id]
    return RecoveredTask(
        info=task.info,
        runtime=task.spec.runtime,
        bundle=task.spec.bundle,
        log_path=task.spec.log_path,
        exit=exit,
        conmon_alive=alive,
    )


async def test_recovery_reconciles_records_with_the_tasks_found(tmp_path: Path) -> None:
    before = PodLayer.build(tmp_path)
    sandbox = await before.sandboxes.run(before.host_pod("web"))
    ids = {}
    for name in ("alive", "exited", "lost", "conmon-died", "created"):
        container = await before.containers.create(sandbox.id, before.container(name))
        if name != "created":
            await before.containers.start(container.id)
        ids[name] = container.id
    found = [
        _recovered(before, ids["alive"], exit=None, alive=True),
        _recovered(
            before,
            ids["exited"],
            exit=ExitFact(id=ids["exited"], exit_code=7, exited_at=1),
            alive=False,
        ),
        _recovered(before, ids["conmon-died"], exit=None, alive=False),
    ]
    orphan_dir = before.settings.state_dir / "containers" / "half-made"
    orphan_dir.mkdir()
    # the daemon "restarts": a new pod layer on the same database and directories
    after = PodLayer.build(tmp_path, db=before.db)
    after.tasks.recovered = [*found, _orphan_task(before, sandbox.id)]
    await after.service.recover()

    def state(name: str) -> tuple[ContainerState, int, str]:
        c = after.containers.get(ids[name])
        return c.state, c.exit_code, c.reason

    assert state("alive") == (ContainerState.RUNNING, 0, "")
    assert state("exited") == (ContainerState.EXITED, 7, "Error")
    assert state("lost") == (ContainerState.EXITED, 255, "Unknown")
    assert state("conmon-died") == (ContainerState.EXITED, 255, "Unknown")
    assert state("created") == (ContainerState.CREATED, 0, "")
    assert ("delete", "orphan-task") in after.tasks.calls  # a task no container owns
    assert not orphan_dir.exists()  # a directory no record owns
    record = after.store.sandboxes.get(sandbox.id)
    assert record is not None and record.state == SandboxState.READY
    # the names survived the restart: a retried create returns the recovered container
    again = await after.containers.create(sandbox.id, after.container("alive"))
    assert again.id == ids["alive"]
    after.close()
    before.snapshotter.close()


def _orphan_task(layer: PodLayer, sandbox_id: str) -> RecoveredTask:
    any_task = next(iter(layer.tasks.tasks.values()))
    return RecoveredTask(
        info=TaskInfo(id="orphan-task", pid=1, conmon_pid=2, conmon_start_time=0, created_at=0),
        runtime="runc",
        bundle=any_task.spec.bundle,
        log_path=any_task.spec.log_path,
        exit=None,
        conmon_alive=True,
    )
