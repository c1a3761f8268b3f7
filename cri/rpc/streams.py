"""The server-streaming list RPCs: each is its List RPC, with the same filter, sent in pages
(``cri/rpc/paging.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc import containers, images, metrics, sandboxes, stats
from cri.rpc.deps import Deps
from cri.rpc.paging import pages


async def stream_pod_sandboxes(
    deps: Deps, request: pb.StreamPodSandboxesRequest
) -> AsyncIterator[pb.StreamPodSandboxesResponse]:
    listed = pb.ListPodSandboxRequest()
    if request.HasField("filter"):
        listed.filter.CopyFrom(request.filter)
    items = sandboxes.list_pod_sandbox(deps, listed).items
    for page in pages(items):
        yield pb.StreamPodSandboxesResponse(pod_sandboxes=page)


async def stream_containers(
    deps: Deps, request: pb.StreamContainersRequest
) -> AsyncIterator[pb.StreamContainersResponse]:
    listed = pb.ListContainersRequest()
    if request.HasField("filter"):
        listed.filter.CopyFrom(request.filter)
    items = containers.list_containers(deps, listed).containers
    for page in pages(items):
        yield pb.StreamContainersResponse(containers=page)


async def stream_images(
    deps: Deps, request: pb.StreamImagesRequest
) -> AsyncIterator[pb.StreamImagesResponse]:
    listed = pb.ListImagesRequest()
    if request.HasField("filter"):
        listed.filter.CopyFrom(request.filter)
    items = images.list_images(deps, listed).images
    for page in pages(items):
        yield pb.StreamImagesResponse(images=page)


async def stream_container_stats(
    deps: Deps, request: pb.StreamContainerStatsRequest
) -> AsyncIterator[pb.StreamContainerStatsResponse]:
    listed = pb.ListContainerStatsRequest()
    if request.HasField("filter"):
        listed.filter.CopyFrom(request.filter)
    items = (await stats.list_container_stats(deps, listed)).stats
    for page in pages(items):
        yield pb.StreamContainerStatsResponse(container_stats=page)


async def stream_pod_sandbox_stats(
    deps: Deps, request: pb.StreamPodSandboxStatsRequest
) -> AsyncIterator[pb.StreamPodSandboxStatsResponse]:
    listed = pb.ListPodSandboxStatsRequest()
    if request.HasField("filter"):
        listed.filter.CopyFrom(request.filter)
    items = (await stats.list_pod_sandbox_stats(deps, listed)).stats
    for page in pages(items):
        yield pb.StreamPodSandboxStatsResponse(pod_sandbox_stats=page)


async def stream_pod_sandbox_metrics(
    deps: Deps, request: pb.StreamPodSandboxMetricsRequest
) -> AsyncIterator[pb.StreamPodSandboxMetricsResponse]:
    items = (
        await metrics.list_pod_sandbox_metrics(deps, pb.ListPodSandboxMetricsRequest())
    ).pod_metrics
    for page in pages(items):
        yield pb.StreamPodSandboxMetricsResponse(pod_sandbox_metrics=page)
