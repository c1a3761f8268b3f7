"""The sandbox controller through its seams (tests/support/pods.py): run, stop, remove, a
retried run, a failure at each step of a run leaving nothing, and reconciliation."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RegistryUnavailable,
)
from runtime.model.pods import NamespaceMode, SandboxState
from tests.support.pods import FakeNetworkManager, PodLayer


@pytest.fixture
def layer(tmp_path: Path) -> Iterator[PodLayer]:
    built = PodLayer.build(tmp_path)
    yield built
    built.close()


async def test_run_makes_a_ready_sandbox_and_says_so(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web"))
    assert sandbox.state == SandboxState.READY
    assert layer.store.sandboxes.get(sandbox.id) == sandbox
    directory = Path(sandbox.state_dir)
    assert (directory / "hostname").read_text() == "web\n"
    assert (directory / "resolv.conf").exists()
    assert sandbox.infra_container_id == ""  # no shared PID namespace: no infra task
    assert layer.topics() == ["/sandboxes/create", "/sandboxes/start"]


async def test_a_shared_pid_namespace_gets_an_infra_task(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web", pid=NamespaceMode.POD))
    assert sandbox.infra_container_id == sandbox.id
    assert layer.tasks.tasks[sandbox.id].info.pid == sandbox.infra_pid
    assert layer.images.pulls == [layer.settings.sandbox_image]  # pulled when missing
    assert Path(sandbox.state_dir) / "rootfs" in layer.rootfs.mounted
    assert (Path(sandbox.state_dir) / "config.json").exists()


async def test_a_sandbox_image_that_cannot_be_pulled_is_named_with_why_the_pod_needs_it(
    layer: PodLayer,
) -> None:
    layer.images.pull_error = RegistryUnavailable("cannot reach registry registry.k8s.io: x")
    with pytest.raises(RegistryUnavailable) as caught:
        await layer.sandboxes.run(layer.host_pod("web", pid=NamespaceMode.POD))
    assert str(caught.value) == (
        f"RegistryUnavailable: sandbox image {layer.settings.sandbox_image}"
        " (images.sandbox_image; an infra container: the pod shares one PID namespace):"
        " cannot reach registry registry.k8s.io: x"
    )
    assert layer.store.sandboxes.all() == []


async def test_a_retried_run_returns_the_same_sandbox(layer: PodLayer) -> None:
    config = layer.host_pod("web")
    first, second = await asyncio.gather(layer.sandboxes.run(config), layer.sandboxes.run(config))
    assert first == second
    again = await layer.sandboxes.run(config)
    assert again == first
    assert len(layer.store.sandboxes.all()) == 1


async def test_the_same_name_with_another_config_is_already_exists(layer: PodLayer) -> None:
    config = layer.host_pod("web")
    await layer.sandboxes.run(config)
    other = dataclasses.replace(config, hostname="other")
    with pytest.raises(AlreadyExists):
        await layer.sandboxes.run(other)


async def test_an_unknown_runtime_handler_is_invalid_argument(layer: PodLayer) -> None:
    config = layer.host_pod("web")
    config = dataclasses.replace(config, runtime_handler="kata")
    with pytest.raises(InvalidArgument, match="kata"):
        await layer.sandboxes.run(config)
    assert layer.leftovers() == []


def _fail_dirs(layer: PodLayer) -> None:
    layer.dirs.fail_next = OSError("no space left on device")


def _fail_pull(layer: PodLayer) -> None:
    layer.images.pull_error = NotFound("pause image not found in registry")


def _fail_mount(layer: PodLayer) -> None:
    layer.rootfs.fail_next = OSError("mount: permission denied")


def _fail_task_create(layer: PodLayer) -> None:
    layer.tasks.fail("create", FailedPrecondition("runc create: no such file"))


def _fail_task_start(layer: PodLayer) -> None:
    layer.tasks.fail("start", FailedPrecondition("runc start: exec format error"))


@pytest.mark.parametrize(
    "inject",
    [_fail_dirs, _fail_pull, _fail_mount, _fail_task_create, _fail_task_start],
    ids=["state-dir", "sandbox-image", "rootfs-mount", "infra-create", "infra-start"],
)
async def test_a_failure_at_each_step_of_run_leaves_nothing(layer: PodLayer, inject) -> None:  # type: ignore[no-untyped-def]
    config = layer.host_pod("web", pid=NamespaceMode.POD)
    inject(layer)
    with pytest.raises((OSError, NotFound, FailedPrecondition)):
        await layer.sandboxes.run(config)
    assert layer.leftovers() == []
    assert "/sandboxes/start" not in layer.topics()
    # the name is free again: the retry kubelet sends succeeds
    layer.images.pull_error = None
    sandbox = await layer.sandboxes.run(config)
    assert sandbox.state == SandboxState.READY


async def test_stop_keeps_the_record_not_ready_and_is_idempotent(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web", pid=NamespaceMode.POD))
    layer.topics()
    stopped = await layer.sandboxes.stop(sandbox.id)
    assert stopped is not None and stopped.state == SandboxState.NOTREADY
    assert stopped.infra_pid == 0
    assert layer.store.sandboxes.get(sandbox.id) == stopped
    assert layer.topics() == ["/sandboxes/stop"]
    again = await layer.sandboxes.stop(sandbox.id)
    assert again == stopped
    assert layer.topics() == []  # nothing changed, nothing published
    assert await layer.sandboxes.stop("no-such-sandbox") is None


async def test_remove_leaves_nothing_and_frees_the_name(layer: PodLayer) -> None:
    config = layer.host_pod("web", pid=NamespaceMode.POD)
    sandbox = await layer.sandboxes.run(config)
    layer.topics()
    await layer.sandboxes.remove(sandbox.id)
    assert layer.leftovers() == []
    assert layer.topics() == ["/sandboxes/stop", "/tasks/delete", "/sandboxes/delete"]
    await layer.sandboxes.remove(sandbox.id)  # unknown ids are fine
    assert layer.topics() == []
    fresh = await layer.sandboxes.run(config)
    assert fresh.id != sandbox.id


async def test_reconcile_removes_a_directory_no_record_owns(layer: PodLayer) -> None:
    orphan = layer.settings.state_dir / "sandboxes" / "half-made"
    (orphan / "ns").mkdir(parents=True)
    await layer.sandboxes.reconcile({})
    assert not orphan.exists()
    assert ("delete", "half-made") in layer.tasks.calls


async def test_reconcile_marks_a_sandbox_whose_infra_is_gone_not_ready(layer: PodLayer) -> None:
    sandbox = await layer.sandboxes.run(layer.host_pod("web", pid=NamespaceMode.POD))
    await layer.sandboxes.reconcile({})  # its infra task was not found after a restart
    record = layer.store.sandboxes.get(sandbox.id)
    assert record is not None and record.state == SandboxState.NOTREADY


# ---- pods with namespaces of their own and a network ---------------------------------------


async def test_a_pod_network_is_attached_through_the_exchange(layer: PodLayer) -> None:
    async with FakeNetworkManager(layer.exchange) as network:
        sandbox = await layer.sandboxes.run(layer.pod("web"))
        assert sandbox.ip.startswith("10.88.0.")
        assert set(sandbox.namespace_paths) == {"net", "ipc", "uts"}
        assert all(layer.namespaces.is_pinned(Path(p)) for p in sandbox.namespace_paths.values())
        assert Path(sandbox.state_dir) / "shm" in layer.rootfs.mounted
        assert network.attached == {sandbox.id}
        await layer.sandboxes.remove(sandbox.id)
        assert network.attached == set()
    assert layer.leftovers() == []


async def test_a_network_that_fails_leaves_nothing(layer: PodLayer) -> None:
    async with FakeNetworkManager(layer.exchange) as network:
        network.fail_next_add = "plugin bridge: no IP addresses available"
        with pytest.raises(FailedPrecondition, match="no IP addresses"):
            await layer.sandboxes.run(layer.pod("web"))
        assert layer.leftovers() == []
        assert "/sandboxes/start" not in layer.topics()
        sandbox = await layer.sandboxes.run(layer.pod("web"))  # kubelet's retry
        assert sandbox.state == SandboxState.READY


async def test_pinning_that_fails_leaves_nothing(layer: PodLayer) -> None:
    layer.namespaces.fail_next = OSError("unshare: operation not permitted")
    with pytest.raises(OSError):
        await layer.sandboxes.run(layer.pod("web"))
    assert layer.leftovers() == []


async def test_reconcile_marks_a_sandbox_that_lost_a_pin_not_ready(layer: PodLayer) -> None:
    async with FakeNetworkManager(layer.exchange):
        sandbox = await layer.sandboxes.run(layer.pod("web"))
        layer.namespaces.break_pin(Path(sandbox.namespace_paths["net"]))
        await layer.sandboxes.reconcile({})
    record = layer.store.sandboxes.get(sandbox.id)
    assert record is not None and record.state == SandboxState.NOTREADY


async def test_the_shared_cgroup_parent_stays_while_another_pod_may_need_it(
    tmp_path: Path,
) -> None:
    # runc makes a pod's cgroup under the parent only when its first container starts; an
    # rmdir of the parent in between would fail that start.
    from runtime.cgroups.mounts import CgroupMode, CgroupMounts

    hierarchy = tmp_path / "cgroup"
    layer = PodLayer.build(
        tmp_path / "layer", cgroups=CgroupMounts(CgroupMode.UNIFIED, unified=hierarchy)
    )
    try:
        first = await layer.sandboxes.run(layer.host_pod("first"))
        second = await layer.sandboxes.run(layer.host_pod("second"))
        parent = hierarchy / layer.settings.default_cgroup_parent.strip("/")
        (hierarchy / first.cgroup_parent.strip("/")).mkdir(parents=True)  # as runc would
        await layer.sandboxes.remove(first.id)
        assert parent.is_dir(), "removed while the second pod may still create its cgroup"
        await layer.sandboxes.remove(second.id)
        assert not parent.exists()
    finally:
        layer.close()
