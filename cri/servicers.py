"""The gRPC servicers: thin dispatch from generated method names to ``cri/rpc`` handlers.

Methods not defined here fall through to the generated base classes, which the server's
interceptor turns into UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc
from cri.rpc import (
    container_events,
    containers,
    images,
    metrics,
    runtime_info,
    sandboxes,
    stats,
    streams,
)
from cri.rpc import streaming as streaming_rpc
from cri.rpc.deps import Deps


class RuntimeServicer(pb_grpc.RuntimeServiceServicer):
    """runtime.v1.RuntimeService."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def Version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        return runtime_info.version(self._deps, request)

    async def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusResponse:
        return runtime_info.status(self._deps, request)

    async def RuntimeConfig(
        self, request: pb.RuntimeConfigRequest, context: Any
    ) -> pb.RuntimeConfigResponse:
        return runtime_info.runtime_config(self._deps, request)

    async def UpdateRuntimeConfig(
        self, request: Any, context: Any
    ) -> pb.UpdateRuntimeConfigResponse:
        return await runtime_info.update_runtime_config(self._deps, request)

    # -- pod sandboxes --
    async def RunPodSandbox(self, request: Any, context: Any) -> pb.RunPodSandboxResponse:
        return await sandboxes.run_pod_sandbox(self._deps, request)

    async def StopPodSandbox(self, request: Any, context: Any) -> pb.StopPodSandboxResponse:
        return await sandboxes.stop_pod_sandbox(self._deps, request)

    async def RemovePodSandbox(self, request: Any, context: Any) -> pb.RemovePodSandboxResponse:
        return await sandboxes.remove_pod_sandbox(self._deps, request)

    # Status answers are cached per state of their records and served serialized.
    async def PodSandboxStatus(self, request: Any, context: Any) -> bytes:
        return sandboxes.pod_sandbox_status_serialized(self._deps, request)

    # The List answers are cached and served serialized (the interceptor passes bytes through).
    async def ListPodSandbox(self, request: Any, context: Any) -> bytes:
        return sandboxes.list_pod_sandbox_serialized(self._deps, request)

    def StreamPodSandboxes(self, request: Any, context: Any) -> Any:
        return streams.stream_pod_sandboxes(self._deps, request)

    async def UpdatePodSandboxResources(
        self, request: Any, context: Any
    ) -> pb.UpdatePodSandboxResourcesResponse:
        return await sandboxes.update_pod_sandbox_resources(self._deps, request)

    # -- containers --
    async def CreateContainer(self, request: Any, context: Any) -> pb.CreateContainerResponse:
        return await containers.create_container(self._deps, request)

    async def StartContainer(self, request: Any, context: Any) -> pb.StartContainerResponse:
        return await containers.start_container(self._deps, request)

    async def StopContainer(self, request: Any, context: Any) -> pb.StopContainerResponse:
        return await containers.stop_container(self._deps, request)

    async def RemoveContainer(self, request: Any, context: Any) -> pb.RemoveContainerResponse:
        return await containers.remove_container(self._deps, request)

    async def ContainerStatus(self, request: Any, context: Any) -> bytes:
        return containers.container_status_serialized(self._deps, request)

    async def ListContainers(self, request: Any, context: Any) -> bytes:
        return containers.list_containers_serialized(self._deps, request)

    def StreamContainers(self, request: Any, context: Any) -> Any:
        return streams.stream_containers(self._deps, request)

    async def UpdateContainerResources(
        self, request: Any, context: Any
    ) -> pb.UpdateContainerResourcesResponse:
        return await containers.update_container_resources(self._deps, request)

    async def ReopenContainerLog(self, request: Any, context: Any) -> pb.ReopenContainerLogResponse:
        return await containers.reopen_container_log(self._deps, request)

    async def ExecSync(self, request: Any, context: Any) -> pb.ExecSyncResponse:
        return await containers.exec_sync(self._deps, request)

    # -- streaming: answer with a URL on the streaming server --
    async def Exec(self, request: Any, context: Any) -> pb.ExecResponse:
        return await streaming_rpc.exec_(self._deps, request)

    async def Attach(self, request: Any, context: Any) -> pb.AttachResponse:
        return await streaming_rpc.attach(self._deps, request)

    async def PortForward(self, request: Any, context: Any) -> pb.PortForwardResponse:
        return await streaming_rpc.port_forward(self._deps, request)

    # -- events --
    def GetContainerEvents(self, request: Any, context: Any) -> Any:
        return container_events.get_container_events(self._deps, request, context)

    # -- statistics --
    async def ContainerStats(self, request: Any, context: Any) -> pb.ContainerStatsResponse:
        return await stats.container_stats(self._deps, request)

    async def ListContainerStats(self, request: Any, context: Any) -> pb.ListContainerStatsResponse:
        return await stats.list_container_stats(self._deps, request)

    def StreamContainerStats(self, request: Any, context: Any) -> Any:
        return streams.stream_container_stats(self._deps, request)

    async def PodSandboxStats(self, request: Any, context: Any) -> pb.PodSandboxStatsResponse:
        return await stats.pod_sandbox_stats(self._deps, request)

    async def ListPodSandboxStats(
        self, request: Any, context: Any
    ) -> pb.ListPodSandboxStatsResponse:
        return await stats.list_pod_sandbox_stats(self._deps, request)

    def StreamPodSandboxStats(self, request: Any, context: Any) -> Any:
        return streams.stream_pod_sandbox_stats(self._deps, request)

    # -- metrics --
    async def ListMetricDescriptors(
        self, request: Any, context: Any
    ) -> pb.ListMetricDescriptorsResponse:
        return metrics.list_metric_descriptors(self._deps, request)

    async def ListPodSandboxMetrics(
        self, request: Any, context: Any
    ) -> pb.ListPodSandboxMetricsResponse:
        return await metrics.list_pod_sandbox_metrics(self._deps, request)

    def StreamPodSandboxMetrics(self, request: Any, context: Any) -> Any:
        return streams.stream_pod_sandbox_metrics(self._deps, request)


class ImageServicer(pb_grpc.ImageServiceServicer):
    """runtime.v1.ImageService."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def ListImages(
        self, request: pb.ListImagesRequest, context: Any
    ) -> pb.ListImagesResponse:
        return images.list_images(self._deps, request)

    def StreamImages(self, request: Any, context: Any) -> Any:
        return streams.stream_images(self._deps, request)

    async def ImageStatus(
        self, request: pb.ImageStatusRequest, context: Any
    ) -> pb.ImageStatusResponse:
        return images.image_status(self._deps, request)

    async def PullImage(self, request: pb.PullImageRequest, context: Any) -> pb.PullImageResponse:
        return await images.pull_image(self._deps, request)

    async def RemoveImage(
        self, request: pb.RemoveImageRequest, context: Any
    ) -> pb.RemoveImageResponse:
        return await images.remove_image(self._deps, request)

    async def ImageFsInfo(
        self, request: pb.ImageFsInfoRequest, context: Any
    ) -> pb.ImageFsInfoResponse:
        return await images.image_fs_info(self._deps, request)
