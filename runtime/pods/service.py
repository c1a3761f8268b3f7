"""The pod service: what spans sandboxes and their containers (stopping and removing a pod,
recovery after a restart, statistics), over the two controllers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.cgroups import CgroupStats, CpuSampler
from runtime.model.pods import Container, ContainerState, Sandbox
from runtime.pods.containers import ContainerController
from runtime.pods.sandboxes import SandboxController
from runtime.pods.store import PodStore
from runtime.stats.layers import LayerUsage, WritableLayers
from runtime.stats.netdev import InterfaceCounters, read_pod_interfaces
from runtime.tasks.interfaces import TaskService


@dataclass(frozen=True, slots=True)
class ContainerFigures:
    """One reading of a container's figures (None where unavailable: not started, gone)."""

    container: Container
    timestamp_ns: int
    cgroup: CgroupStats | None
    usage_nano_cores: int | None
    writable: LayerUsage | None


@dataclass(frozen=True, slots=True)
class SandboxFigures:
    """One reading of a pod: its cgroup parent's figures, the counters of the interfaces in
    its network namespace (None: it has none of its own, or it is gone) and its containers'."""

    sandbox: Sandbox
    timestamp_ns: int
    cgroup: CgroupStats | None
    usage_nano_cores: int | None
    containers: tuple[ContainerFigures, ...]
    interfaces: tuple[InterfaceCounters, ...] | None = None


class PodService:
    """Pods as wholes. Stop and remove of one pod are ordered by that pod's lock; different
    pods never wait on each other."""

    def __init__(
        self,
        *,
        store: PodStore,
        tasks: TaskService,
        sandboxes: SandboxController,
        containers: ContainerController,
        layers: WritableLayers | None = None,
    ) -> None:
        self.store = store
        self.sandboxes = sandboxes
        self.containers = containers
        self.layers = layers
        self._tasks = tasks
        self._cpu = CpuSampler()

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """Kill the pod's containers and release its resources (the record stays)."""
        async with self.sandboxes.lock(sandbox_id):
            await self.containers.stop_all(sandbox_id, timeout=0)
            await self.sandboxes.stop(sandbox_id)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Force-stop and delete the pod, its containers and its record."""
        async with self.sandboxes.lock(sandbox_id):
            members = [c.id for c in self.store.containers_of(sandbox_id)]
            await self.containers.stop_all(sandbox_id, timeout=0)
            await self.containers.remove_all(sandbox_id)
            await self.sandboxes.remove(sandbox_id)
        for container_id in members:
            self._cpu.forget(container_id)
        self._cpu.forget(f"pod-{sandbox_id}")

    async def remove_container(self, container_id: str) -> None:
        """Force-stop and delete one container (unknown ids are fine)."""
        await self.containers.remove(container_id)
        self._cpu.forget(container_id)

    async def recover(self) -> None:
        """At start: load records, find the tasks of the previous run, reconcile both."""
        await asyncio.to_thread(self.store.load)
        found = {task.info.id: task for task in await self._tasks.recover()}
        await self.sandboxes.reconcile(found)
        await self.containers.reconcile(found)

    # ---- statistics ---------------------------------------------------------------------

    def _container_figures(self, container: Container) -> ContainerFigures:
        now = time.time_ns()
        path = self.containers.cgroup_path(container)
        cgroup = self.containers.read_cgroup(path) if path else None
        rate = (
            self._cpu.sample(container.id, cgroup.cpu_usage_ns, time.monotonic_ns())
            if cgroup is not None
            else None
        )
        return ContainerFigures(
            container=container,
            timestamp_ns=now,
            cgroup=cgroup,
            usage_nano_cores=rate,
            # measured in the background (runtime.stats.layers): a dict read, never a walk
            writable=self.layers.usage(container.id) if self.layers is not None else None,
        )

    async def container_figures(self, containers: list[Container]) -> list[ContainerFigures]:
        def read() -> list[ContainerFigures]:
            return [self._container_figures(c) for c in containers]

        return await asyncio.to_thread(read)

    async def sandbox_figures(self, sandboxes: list[Sandbox]) -> list[SandboxFigures]:
        def read() -> list[SandboxFigures]:
            out = []
            for sandbox in sandboxes:
                now = time.time_ns()
                cgroup = self.containers.read_cgroup(sandbox.cgroup_parent)
                rate = (
                    self._cpu.sample(f"pod-{sandbox.id}", cgroup.cpu_usage_ns, time.monotonic_ns())
                    if cgroup is not None
                    else None
                )
                members = tuple(
                    self._container_figures(c) for c in self.store.containers_of(sandbox.id)
                )
                out.append(
                    SandboxFigures(
                        sandbox, now, cgroup, rate, members, interfaces=self._interfaces(sandbox)
                    )
                )
            return out

        return await asyncio.to_thread(read)

    def _interfaces(self, sandbox: Sandbox) -> tuple[InterfaceCounters, ...] | None:
        """Blocking: the counters of the pod's own network namespace, read through a process
        in it (its infra process or a running container) when there is one."""
        netns = sandbox.namespace_paths.get("net")
        if not netns:
            return None
        pids = [sandbox.infra_pid] + [
            c.pid
            for c in self.store.containers_of(sandbox.id)
            if c.state == ContainerState.RUNNING and c.pid
        ]
        found = read_pod_interfaces(Path(netns), pids)
        return None if found is None else tuple(found)
