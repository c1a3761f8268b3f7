"""RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox."""

from __future__ import annotations

import time
from collections.abc import Callable

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc import containers, resolve
from cri.rpc.deps import Deps
from cri.translate import containers as ctr
from cri.translate import filters, pods
from runtime.errors import InvalidArgument


async def run_pod_sandbox(deps: Deps, request: pb.RunPodSandboxRequest) -> pb.RunPodSandboxResponse:
    if not request.HasField("config"):
        raise InvalidArgument("RunPodSandbox: config is missing")
    config = pods.sandbox_config(request.config, runtime_handler=request.runtime_handler)
    sandbox = await deps.pods.sandboxes.run(config)
    return pb.RunPodSandboxResponse(pod_sandbox_id=sandbox.id)


async def stop_pod_sandbox(
    deps: Deps, request: pb.StopPodSandboxRequest
) -> pb.StopPodSandboxResponse:
    # CRI: stopping a sandbox that does not exist (any more) succeeds.
    sandbox_id = resolve.sandbox_id(deps, request.pod_sandbox_id)
    if sandbox_id is not None:
        await deps.pods.stop_sandbox(sandbox_id)
    return pb.StopPodSandboxResponse()


async def remove_pod_sandbox(
    deps: Deps, request: pb.RemovePodSandboxRequest
) -> pb.RemovePodSandboxResponse:
    # CRI: removing a sandbox that does not exist succeeds; a running one is force-stopped.
    sandbox_id = resolve.sandbox_id(deps, request.pod_sandbox_id)
    if sandbox_id is not None:
        await deps.pods.remove_sandbox(sandbox_id)
    return pb.RemovePodSandboxResponse()


def pod_sandbox_status(
    deps: Deps, request: pb.PodSandboxStatusRequest
) -> pb.PodSandboxStatusResponse:
    sandbox = resolve.require_sandbox(deps, request.pod_sandbox_id)
    statuses = [containers.status_of(deps, c) for c in deps.pods.containers_of(sandbox.id)]
    info = pods.sandbox_verbose_info(sandbox, extra={}) if request.verbose else {}
    return pb.PodSandboxStatusResponse(
        status=pods.sandbox_status(sandbox),
        info=info,
        containers_statuses=statuses,
        timestamp=time.time_ns(),
    )


def pod_sandbox_status_serialized(deps: Deps, request: pb.PodSandboxStatusRequest) -> bytes:
    """PodSandboxStatus's answer as wire bytes: built once per state of the records it is made
    of (the sandbox, its containers and their images; :mod:`cri.rpc.statuscache`), then this
    call's timestamp appended as a field of its own (protobuf parses concatenated messages as
    one, and the cached part has no timestamp). A verbose answer is built per call."""
    if request.verbose:
        return pod_sandbox_status(deps, request).SerializeToString()
    sandbox = resolve.require_sandbox(deps, request.pod_sandbox_id)
    members = deps.pods.containers_of(sandbox.id)
    images = [deps.images.lookup(c.image_id) for c in members]

    def build() -> pb.PodSandboxStatusResponse:
        return pb.PodSandboxStatusResponse(
            status=pods.sandbox_status(sandbox),
            containers_statuses=[containers.status_of(deps, c) for c in members],
        )

    body = deps.statuses.get(("PodSandboxStatus", sandbox.id), (sandbox, *members, *images), build)
    return body + pb.PodSandboxStatusResponse(timestamp=time.time_ns()).SerializeToString()


def list_pod_sandbox(deps: Deps, request: pb.ListPodSandboxRequest) -> pb.ListPodSandboxResponse:
    return deps.lists.get("ListPodSandbox", *_list_pod_sandbox(deps, request))


def list_pod_sandbox_serialized(deps: Deps, request: pb.ListPodSandboxRequest) -> bytes:
    """ListPodSandbox's answer as wire bytes (see :mod:`cri.rpc.listcache`)."""
    return deps.lists.get_serialized("ListPodSandbox", *_list_pod_sandbox(deps, request))


def _list_pod_sandbox(
    deps: Deps, request: pb.ListPodSandboxRequest
) -> tuple[bytes, tuple[int, ...], Callable[[], pb.ListPodSandboxResponse]]:
    """(the cache key's filter, the version, the build) of a ListPodSandbox answer."""
    pods_ = deps.pods

    def build() -> pb.ListPodSandboxResponse:
        sandboxes = pods_.list_sandboxes()
        if request.HasField("filter"):
            sandboxes = filters.SandboxFilter.from_pb(request.filter).apply(sandboxes)
        return pb.ListPodSandboxResponse(items=[pods.sandbox_summary(s) for s in sandboxes])

    return request.filter.SerializeToString(), (pods_.sandboxes_generation(),), build


async def update_pod_sandbox_resources(
    deps: Deps, request: pb.UpdatePodSandboxResourcesRequest
) -> pb.UpdatePodSandboxResourcesResponse:
    # The kubelet's in-place pod resize: the pod's new total (and overhead) resources.
    sandbox = resolve.require_sandbox(deps, request.pod_sandbox_id)
    overhead = (
        ctr.resources(request.overhead, field="overhead") if request.HasField("overhead") else None
    )
    resources = (
        ctr.resources(request.resources, field="resources")
        if request.HasField("resources")
        else None
    )
    if overhead is None and resources is None:
        raise InvalidArgument("UpdatePodSandboxResources: neither resources nor overhead is set")
    await deps.pods.sandboxes.update_resources(sandbox.id, overhead=overhead, resources=resources)
    return pb.UpdatePodSandboxResourcesResponse()
