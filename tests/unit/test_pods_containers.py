"""The container controller through its seams (tests/support/pods.py): create, start, exit,
stop, remove, a retried create, a failure at each step of a create leaving nothing, a failed
start, and every transition the container's states do not allow."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from runtime.events.types import TaskExit
from runtime.model.pods import Container, ContainerState, Device, Resources, Sandbox
from runtime.pods.hooks import NoHooks
from tests.support.pods import PodLayer


@pytest.fixture
async def layer(tmp_path: Path) -> AsyncIterator[PodLayer]:
    built = PodLayer.build(tmp_path)
    yield built
    built.close()


@pytest.fixture
async def sandbox(layer: PodLayer) -> Sandbox:
    made = await layer.sandboxes.run(layer.host_pod("web"))
    layer.topics()
    return made


def _beyond(layer: PodLayer, sandbox: Sandbox) -> list[str]:
    """What is left on the node besides the sandbox itself (its directory and record)."""
    mine = {f"dir sandboxes/{sandbox.id}", f"sandbox record {sandbox.id}"}
    return [item for item in layer.leftovers() if item not in mine]


async def _exited(layer: PodLayer, container_id: str, *, exit_code: int) -> None:
    """End the task's process and await the recorded fact (never a sleep)."""
    async with layer.exchange.subscribe(
        f'topic=="/tasks/exit",event.container_id=="{container_id}"'
    ) as sub:
        layer.tasks.exit(container_id, exit_code=exit_code)
        envelope = await sub.next(timeout=10)
    assert isinstance(envelope.event, TaskExit)


async def test_create_prepares_a_bundle_and_runs_nothing(layer: PodLayer, sandbox: Sandbox) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    assert container.state == ContainerState.CREATED
    assert layer.store.containers.get(container.id) == container
    bundle = Path(container.bundle)
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["args"] == ["sleep", "9"]
    assert spec["root"]["path"] == str(bundle / "rootfs")
    assert bundle / "rootfs" in layer.rootfs.mounted
    assert layer.snapshotter.stat(container.snapshot_key).parent == layer.image.chain_id
    assert layer.tasks.live() == set()  # a task only on start
    assert layer.topics() == ["/containers/create"]


async def test_a_retried_create_returns_the_same_container(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    config = layer.container("app")
    first = await layer.containers.create(sandbox.id, config)
    again = await layer.containers.create(sandbox.id, config)
    assert again == first
    with pytest.raises(AlreadyExists):
        await layer.containers.create(sandbox.id, dataclasses.replace(config, args=("x",)))
    assert len(layer.store.containers.all()) == 1


async def test_create_needs_a_ready_sandbox_and_a_pulled_image(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    with pytest.raises(NotFound, match="pull it"):
        await layer.containers.create(sandbox.id, layer.container("app", image="nope:1"))
    with pytest.raises(NotFound):
        await layer.containers.create("no-such-sandbox", layer.container("app"))
    await layer.sandboxes.stop(sandbox.id)
    with pytest.raises(FailedPrecondition, match="is notready"):
        await layer.containers.create(sandbox.id, layer.container("app"))
    assert _beyond(layer, sandbox) == []


def _fail_dirs(layer: PodLayer) -> None:
    layer.dirs.fail_next = OSError("no space left on device")


def _fail_snapshot(layer: PodLayer) -> None:
    # the image's layers were collected behind its back: prepare finds no parent
    layer.snapshotter.remove(layer.image.chain_id)


def _fail_mount(layer: PodLayer) -> None:
    layer.rootfs.fail_next = OSError("mount: permission denied")


@pytest.mark.parametrize(
    "inject", [_fail_dirs, _fail_snapshot, _fail_mount], ids=["bundle-dir", "snapshot", "mount"]
)
async def test_a_failure_at_each_step_of_create_leaves_nothing(
    layer: PodLayer,
    sandbox: Sandbox,
    inject,  # type: ignore[no-untyped-def]
) -> None:
    inject(layer)
    with pytest.raises((OSError, NotFound)):
        await layer.containers.create(sandbox.id, layer.container("app"))
    assert _beyond(layer, sandbox) == []
    assert layer.topics() == []


class _RefusingHooks(NoHooks):
    """Lifecycle hooks whose CreateContainer hook refuses once (as an NRI plugin may)."""

    def __init__(self) -> None:
        self.refused = False

    async def create_container(
        self, sandbox: Sandbox, container: Container, spec: dict[str, Any]
    ) -> None:
        if not self.refused:
            self.refused = True
            raise FailedPrecondition("plugin says no")


@pytest.mark.parametrize("step", ["cdi", "hook", "record"])
async def test_a_failure_after_the_spec_is_built_leaves_nothing(tmp_path: Path, step: str) -> None:
    """The steps between spec build and the durable record: CDI injection (an unknown device),
    the CreateContainer hook, and the spec + record write."""
    layer = PodLayer.build(tmp_path, hooks=_RefusingHooks() if step == "hook" else None)
    try:
        sandbox = await layer.sandboxes.run(layer.host_pod("web"))
        layer.topics()
        config = layer.container("app")
        if step == "cdi":
            config = dataclasses.replace(config, cdi_devices=("vendor.example/gpu=0",))
        if step == "record":
            layer.db.close()  # the record's write fails: the database is gone
        with pytest.raises((InvalidArgument, FailedPrecondition)):
            await layer.containers.create(sandbox.id, config)
        assert _beyond(layer, sandbox) == []
        assert layer.topics() == []
        if step != "record":  # the name is free again: a retry that can succeed does
            await layer.containers.create(sandbox.id, layer.container("app"))
    finally:
        layer.close()


async def test_a_spec_that_cannot_be_built_leaves_nothing(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    config = dataclasses.replace(
        layer.container("app"),
        devices=(Device(container_path="/dev/x", host_path="/dev/no-such-device"),),
    )
    with pytest.raises(InvalidArgument):
        await layer.containers.create(sandbox.id, config)
    assert _beyond(layer, sandbox) == []
    # and the name is free for the retry
    assert (await layer.containers.create(sandbox.id, layer.container("app"))).state == (
        ContainerState.CREATED
    )


async def test_start_exit_stop_remove(layer: PodLayer, sandbox: Sandbox) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    running = await layer.containers.start(container.id)
    assert running.state == ContainerState.RUNNING
    assert running.pid == layer.tasks.tasks[container.id].info.pid
    await _exited(layer, container.id, exit_code=3)
    exited = layer.containers.get(container.id)
    assert (exited.state, exited.exit_code, exited.reason) == (ContainerState.EXITED, 3, "Error")
    await layer.containers.stop(container.id, timeout=0)  # stopping an exited one: fine
    await layer.containers.remove(container.id)
    assert _beyond(layer, sandbox) == []
    assert layer.topics() == [
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ]


async def test_stop_records_the_exit_once(layer: PodLayer, sandbox: Sandbox) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    await layer.containers.start(container.id)
    layer.topics()
    await layer.containers.stop(container.id, timeout=0)
    stopped = layer.containers.get(container.id)
    assert stopped.state == ContainerState.EXITED
    assert stopped.exit_code == 128 + 15
    assert layer.topics() == ["/tasks/exit"]  # the callback's report of it changed nothing


async def test_a_failed_start_is_a_start_error_and_leaves_no_task(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    layer.tasks.fail("start", FailedPrecondition('exec: "sleep": not found'))
    with pytest.raises(FailedPrecondition, match="not found"):
        await layer.containers.start(container.id)
    failed = layer.containers.get(container.id)
    assert (failed.state, failed.exit_code, failed.reason) == (
        ContainerState.EXITED,
        128,
        "StartError",
    )
    assert layer.tasks.live() == set()


async def test_remove_of_a_running_container_stops_it_first(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    await layer.containers.start(container.id)
    await layer.containers.remove(container.id)
    assert _beyond(layer, sandbox) == []
    await layer.containers.remove(container.id)  # unknown ids are fine
    # the name is free again
    assert (await layer.containers.create(sandbox.id, layer.container("app"))).id != container.id


# ---- transitions the states do not allow ---------------------------------------------------


async def test_only_a_created_container_starts(layer: PodLayer, sandbox: Sandbox) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    await layer.containers.start(container.id)
    with pytest.raises(FailedPrecondition, match="running"):
        await layer.containers.start(container.id)
    await layer.containers.stop(container.id, timeout=0)
    with pytest.raises(FailedPrecondition, match="exited"):
        await layer.containers.start(container.id)
    with pytest.raises(NotFound):
        await layer.containers.start("no-such-container")


async def test_a_container_of_a_stopped_sandbox_does_not_start(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    await layer.sandboxes.stop(sandbox.id)
    with pytest.raises(FailedPrecondition, match="is notready"):
        await layer.containers.start(container.id)
    assert layer.containers.get(container.id).state == ContainerState.CREATED


async def test_exec_and_reopen_log_need_a_running_container(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    with pytest.raises(FailedPrecondition, match="created"):
        await layer.containers.exec_sync(container.id, ["true"], timeout=1)
    with pytest.raises(FailedPrecondition, match="created"):
        await layer.containers.reopen_log(container.id)
    await layer.containers.start(container.id)
    assert (await layer.containers.exec_sync(container.id, ["true"], timeout=1)).exit_code == 0
    await layer.containers.stop(container.id, timeout=0)
    with pytest.raises(FailedPrecondition, match="exited"):
        await layer.containers.exec_sync(container.id, ["true"], timeout=1)


async def test_resources_update_in_each_state(layer: PodLayer, sandbox: Sandbox) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    limits = Resources(memory_limit_in_bytes=64 * 1024 * 1024)
    updated = await layer.containers.update_resources(container.id, limits)
    assert updated.resources == limits
    spec = json.loads((Path(container.bundle) / "config.json").read_text())
    assert spec["linux"]["resources"]["memory"]["limit"] == 64 * 1024 * 1024
    await layer.containers.start(container.id)
    await layer.containers.update_resources(container.id, limits)
    assert layer.tasks.tasks[container.id].resources["memory"]["limit"] == 64 * 1024 * 1024
    await layer.containers.stop(container.id, timeout=0)
    with pytest.raises(FailedPrecondition, match="exited"):
        await layer.containers.update_resources(container.id, limits)


async def test_an_oom_kill_is_published_after_the_exit_it_ended_in(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    await layer.containers.start(container.id)
    layer.topics()
    async with layer.exchange.subscribe(
        f'topic=="/tasks/oom",event.container_id=="{container.id}"'
    ) as sub:
        layer.tasks.exit(container.id, exit_code=137, oom_killed=True)
        await sub.next(timeout=10)
    exited = layer.containers.get(container.id)
    assert (exited.state, exited.reason) == (ContainerState.EXITED, "OOMKilled")
    assert layer.topics() == ["/tasks/exit", "/tasks/oom"]
    await layer.containers.stop(container.id, timeout=0)
    assert layer.topics() == []  # the end was reported once


async def test_a_resources_update_is_published_once_written(
    layer: PodLayer, sandbox: Sandbox
) -> None:
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    layer.topics()
    limits = Resources(memory_limit_in_bytes=64 * 1024 * 1024)
    await layer.containers.update_resources(container.id, limits)
    assert layer.topics() == ["/containers/update"]
    await layer.containers.start(container.id)
    layer.topics()
    await layer.containers.update_resources(container.id, limits)
    assert layer.topics() == ["/containers/update"]
    await layer.containers.stop(container.id, timeout=0)
    layer.topics()
    with pytest.raises(FailedPrecondition):
        await layer.containers.update_resources(container.id, limits)
    assert layer.topics() == []  # refused: nothing changed, nothing said
