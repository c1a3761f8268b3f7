"""The gRPC servicers: thin dispatch from generated method names to ``cri/rpc`` handlers.

Methods not defined here fall through to the generated base classes, which the server's
interceptor turns into UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc
from cri.rpc import images, runtime_info
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


class ImageServicer(pb_grpc.ImageServiceServicer):
    """runtime.v1.ImageService."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def ListImages(
        self, request: pb.ListImagesRequest, context: Any
    ) -> pb.ListImagesResponse:
        return images.list_images(self._deps, request)

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
