"""ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: cgroup figures,
CPU rates from the previous reading, and writable-layer usage."""

from __future__ import annotations

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc import resolve
from cri.rpc.deps import Deps
from cri.translate import filters
from cri.translate import stats as tr
from runtime.model.pods import ContainerState
from runtime.pods.service import ContainerFigures, SandboxFigures


def _container(deps: Deps, figures: ContainerFigures, mountpoint: str) -> pb.ContainerStats:
    return tr.container_stats(
        figures.container,
        figures.cgroup,
        timestamp_ns=figures.timestamp_ns,
        usage_nano_cores=figures.usage_nano_cores,
        writable_bytes=figures.writable.used_bytes if figures.writable else None,
        writable_inodes=figures.writable.inodes if figures.writable else None,
        writable_timestamp_ns=figures.writable.timestamp_ns if figures.writable else None,
        image_fs_mountpoint=mountpoint,
        pressures=figures.pressures,
    )


def _mountpoint(deps: Deps) -> str:
    # the snapshotter's root, as ImageFsInfo names it: known without measuring anything
    return deps.images.fs_id


async def container_stats(
    deps: Deps, request: pb.ContainerStatsRequest
) -> pb.ContainerStatsResponse:
    container = resolve.require_container(deps, request.container_id)
    (figures,) = await deps.pods.container_figures([container])
    return pb.ContainerStatsResponse(stats=_container(deps, figures, _mountpoint(deps)))


async def list_container_stats(
    deps: Deps, request: pb.ListContainerStatsRequest
) -> pb.ListContainerStatsResponse:
    running = [c for c in deps.pods.list_containers() if c.state == ContainerState.RUNNING]
    containers = filters.ContainerFilter.from_pb(request.filter).apply(
        running, sandbox_ids=[s.id for s in deps.pods.list_sandboxes()]
    )
    figures = await deps.pods.container_figures(containers)
    mountpoint = _mountpoint(deps)
    return pb.ListContainerStatsResponse(stats=[_container(deps, x, mountpoint) for x in figures])


def _sandbox(deps: Deps, figures: SandboxFigures, mountpoint: str) -> pb.PodSandboxStats:
    members = [_container(deps, c, mountpoint) for c in figures.containers]
    return tr.pod_sandbox_stats(
        figures.sandbox,
        figures.cgroup,
        members,
        timestamp_ns=figures.timestamp_ns,
        usage_nano_cores=figures.usage_nano_cores,
        interfaces=figures.interfaces,
        pressures=figures.pressures,
    )


async def pod_sandbox_stats(
    deps: Deps, request: pb.PodSandboxStatsRequest
) -> pb.PodSandboxStatsResponse:
    sandbox = resolve.require_sandbox(deps, request.pod_sandbox_id)
    (figures,) = await deps.pods.sandbox_figures([sandbox])
    return pb.PodSandboxStatsResponse(stats=_sandbox(deps, figures, _mountpoint(deps)))


async def list_pod_sandbox_stats(
    deps: Deps, request: pb.ListPodSandboxStatsRequest
) -> pb.ListPodSandboxStatsResponse:
    sandboxes = filters.SandboxFilter.from_pb(request.filter).apply(deps.pods.list_sandboxes())
    figures = await deps.pods.sandbox_figures(sandboxes)
    mountpoint = _mountpoint(deps)
    return pb.ListPodSandboxStatsResponse(stats=[_sandbox(deps, x, mountpoint) for x in figures])
