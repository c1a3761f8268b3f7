"""The pod service: what spans sandboxes and their containers (stopping and removing a pod,
recovery after a restart, statistics), over the two controllers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.cgroups import CgroupStats, CpuSampler
from runtime.cgroups.detail import CgroupDetail, Pressures
from runtime.model.pods import Container, ContainerState, Sandbox, SandboxState
from runtime.pods.containers import ContainerController
from runtime.pods.sandboxes import SandboxController
from runtime.pods.store import PodStore
from runtime.stats.layers import LayerUsage, WritableLayers
from runtime.stats.netdev import InterfaceCounters, read_pod_interfaces
from runtime.stats.procs import OpenFiles, block_device_name, open_files
from runtime.tasks.interfaces import TaskService


@dataclass(frozen=True, slots=True)
class ContainerFigures:
    """One reading of a container's figures (None where unavailable: not started, gone)."""

    container: Container
    timestamp_ns: int
    cgroup: CgroupStats | None
    usage_nano_cores: int | None
    writable: LayerUsage | None
    pressures: Pressures | None = None


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
    pressures: Pressures | None = None


@dataclass(frozen=True, slots=True)
class FsCapacity:
    """Size of the filesystem containers' writable layers are on (``statvfs``)."""

    capacity_bytes: int
    inodes_total: int
    inodes_free: int


@dataclass(frozen=True, slots=True)
class ContainerMetricFigures:
    """What the cAdvisor-style metrics of one running container are built from."""

    container: Container
    timestamp_ns: int
    cgroup: CgroupDetail
    writable: LayerUsage | None
    open_files: OpenFiles
    devices: dict[tuple[int, int], str]


@dataclass(frozen=True, slots=True)
class SandboxMetricFigures:
    """The metrics' figures of one ready pod: its interfaces and its running containers."""

    sandbox: Sandbox
    timestamp_ns: int
    interfaces: tuple[InterfaceCounters, ...] | None
    containers: tuple[ContainerMetricFigures, ...]
    fs: FsCapacity | None


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

    # ---- reads (from memory: what list and status RPCs answer from) -------------------------

    def get_sandbox(self, sandbox_id: str) -> Sandbox | None:
        return self.store.sandboxes.get(sandbox_id)

    def list_sandboxes(self) -> list[Sandbox]:
        return self.store.sandboxes.all()

    def get_container(self, container_id: str) -> Container | None:
        return self.store.containers.get(container_id)

    def list_containers(self) -> list[Container]:
        return self.store.containers.all()

    def containers_of(self, sandbox_id: str) -> list[Container]:
        return self.store.containers_of(sandbox_id)

    def sandboxes_generation(self) -> int:
        """Changes when any sandbox record does (views derived from them cache by it)."""
        return self.store.sandboxes.generation

    def containers_generation(self) -> int:
        """Changes when any container record does."""
        return self.store.containers.generation

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

    async def recover(
        self, *, records_loaded: bool = False, lap: Callable[[str], None] = lambda step: None
    ) -> None:
        """At start: load records (unless the caller has: ``records_loaded``), find the tasks
        of the previous run, reconcile both. ``lap(step)`` is called as each step ends (the
        daemon's start-up clock)."""
        if not records_loaded:
            await asyncio.to_thread(self.store.load)
            lap("records")
        found = {task.info.id: task for task in await self._tasks.recover()}
        lap("tasks")
        await self.sandboxes.reconcile(found)
        lap("sandboxes")
        await self.containers.reconcile(found)
        lap("containers")

    # ---- statistics ---------------------------------------------------------------------

    def _container_figures(self, container: Container) -> ContainerFigures:
        now = time.time_ns()
        path = self.containers.cgroup_path(container)
        # CPU and memory (and PSI below): what a ContainerStats carries, on the stats RPCs path
        cgroup = self.containers.read_cgroup(path, brief=True) if path else None
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
            pressures=self.containers.read_pressures(path) if path and cgroup is not None else None,
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
                        sandbox,
                        now,
                        cgroup,
                        rate,
                        members,
                        interfaces=self._interfaces(sandbox),
                        pressures=self.containers.read_pressures(sandbox.cgroup_parent)
                        if cgroup is not None
                        else None,
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

    # ---- metrics --------------------------------------------------------------------------

    async def metric_figures(
        self, sandboxes: list[Sandbox], *, fs_path: str
    ) -> list[SandboxMetricFigures]:
        """The figures of ``ListPodSandboxMetrics``: ready pods and their running containers,
        every cgroup figure, open files, layer usage, network counters. Blocking work runs on
        a worker thread."""
        ready = [s for s in sandboxes if s.state == SandboxState.READY]
        members = {
            s.id: [c for c in self.store.containers_of(s.id) if c.state == ContainerState.RUNNING]
            for s in ready
        }

        def read() -> list[SandboxMetricFigures]:
            fs = _fs_capacity(fs_path)
            names: dict[tuple[int, int], str] = {}
            out = []
            for sandbox in ready:
                containers = []
                for c in members[sandbox.id]:
                    path = self.containers.cgroup_path(c)
                    detail = self.containers.read_cgroup_detail(path) if path else None
                    if detail is None:
                        continue
                    for io in detail.block_io:
                        key = (io.major, io.minor)
                        if key not in names:
                            names[key] = block_device_name(io.major, io.minor)
                    containers.append(
                        ContainerMetricFigures(
                            container=c,
                            timestamp_ns=time.time_ns(),
                            cgroup=detail,
                            writable=self.layers.usage(c.id) if self.layers else None,
                            open_files=open_files(detail.pids),
                            devices={
                                (io.major, io.minor): names[(io.major, io.minor)]
                                for io in detail.block_io
                            },
                        )
                    )
                out.append(
                    SandboxMetricFigures(
                        sandbox=sandbox,
                        timestamp_ns=time.time_ns(),
                        interfaces=self._interfaces(sandbox),
                        containers=tuple(containers),
                        fs=fs,
                    )
                )
            return out

        return await asyncio.to_thread(read)


def _fs_capacity(path: str) -> FsCapacity | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return FsCapacity(
        capacity_bytes=st.f_blocks * st.f_frsize, inodes_total=st.f_files, inodes_free=st.f_ffree
    )
