"""The CRI ImageService: ListImages, ImageStatus, PullImage, RemoveImage, ImageFsInfo."""

from __future__ import annotations

import contextlib

from cri.api.runtime.v1 import api_pb2 as pb
from cri.errors import status_for
from cri.rpc.deps import Deps
from cri.translate import images as translate
from runtime.distribution.auth import Credentials, make_credentials
from runtime.errors import InvalidArgument
from runtime.images.service import FsUsage


def list_images(deps: Deps, request: pb.ListImagesRequest) -> pb.ListImagesResponse:
    name = request.filter.image.image if request.HasField("filter") else ""
    records = deps.images.images(name_filter=name)
    return pb.ListImagesResponse(
        images=[translate.image(r, pinned=deps.images.is_pinned(r)) for r in records]
    )


def image_status(deps: Deps, request: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
    # CRI: an absent image is an empty response, not an error.
    record = deps.images.find(request.image.image)
    if record is None:
        return pb.ImageStatusResponse()
    info = translate.verbose_info(record) if request.verbose else {}
    return pb.ImageStatusResponse(
        image=translate.image(record, pinned=deps.images.is_pinned(record)), info=info
    )


def credentials(auth: pb.AuthConfig) -> Credentials | None:
    """Credentials carried by a PullImageRequest (None when it carries none)."""
    return make_credentials(
        username=auth.username,
        password=auth.password,
        auth=auth.auth,
        identity_token=auth.identity_token,
        registry_token=auth.registry_token,
    )


async def pull_image(deps: Deps, request: pb.PullImageRequest) -> pb.PullImageResponse:
    text = request.image.image
    if not text:
        raise InvalidArgument("PullImage: image.image is empty; give a reference like busybox:1.36")
    creds = credentials(request.auth) if request.HasField("auth") else None
    server = request.auth.server_address if request.HasField("auth") else ""
    try:
        record = await deps.images.pull(
            text,
            credentials=creds,
            credentials_host=server or None,
            progress=deps.metrics.pull_sink(),
        )
    except Exception as exc:
        deps.metrics.image_pulls.labels(status_for(exc).name).inc()
        raise
    deps.metrics.image_pulls.labels("success").inc()
    deps.metrics.images.set(deps.images.count())
    return pb.PullImageResponse(image_ref=record.id)


async def remove_image(deps: Deps, request: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
    # CRI: removing an image that is not there succeeds.
    with contextlib.suppress(LookupError):
        await deps.images.remove(request.image.image)
    deps.metrics.images.set(deps.images.count())
    return pb.RemoveImageResponse()


def _fs(usage: FsUsage) -> pb.FilesystemUsage:
    return pb.FilesystemUsage(
        timestamp=usage.timestamp_ns,
        fs_id=pb.FilesystemIdentifier(mountpoint=usage.mountpoint),
        used_bytes=pb.UInt64Value(value=usage.used_bytes),
        inodes_used=pb.UInt64Value(value=usage.inodes_used),
    )


async def image_fs_info(deps: Deps, request: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
    found = await deps.images.filesystems()
    out = pb.ImageFsInfoResponse(image_filesystems=[_fs(found.image)])
    if found.containers is not None:
        out.container_filesystems.append(_fs(found.containers))
    return out
