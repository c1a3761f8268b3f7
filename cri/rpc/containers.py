"""CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
ListContainers, UpdateContainerResources, ReopenContainerLog, ExecSync."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc import resolve
from cri.rpc.deps import Deps
from cri.translate import containers as ctr
from cri.translate import filters
from runtime.errors import DeadlineExceeded, InvalidArgument
from runtime.images.store import ImageRecord
from runtime.model.pods import Container


async def create_container(
    deps: Deps, request: pb.CreateContainerRequest
) -> pb.CreateContainerResponse:
    if not request.HasField("config"):
        raise InvalidArgument("CreateContainer: config is missing")
    sandbox = resolve.require_sandbox(deps, request.pod_sandbox_id)
    config = ctr.container_config(request.config)
    container = await deps.pods.containers.create(sandbox.id, config)
    return pb.CreateContainerResponse(container_id=container.id)


async def start_container(
    deps: Deps, request: pb.StartContainerRequest
) -> pb.StartContainerResponse:
    container = resolve.require_container(deps, request.container_id)
    await deps.pods.containers.start(container.id)
    return pb.StartContainerResponse()


async def stop_container(deps: Deps, request: pb.StopContainerRequest) -> pb.StopContainerResponse:
    # CRI: stopping an unknown or already stopped container succeeds.
    container_id = resolve.container_id(deps, request.container_id)
    if container_id is not None:
        await deps.pods.containers.stop(container_id, timeout=float(request.timeout))
    return pb.StopContainerResponse()


async def remove_container(
    deps: Deps, request: pb.RemoveContainerRequest
) -> pb.RemoveContainerResponse:
    # CRI: removing an unknown container succeeds; a running one is force-removed.
    container_id = resolve.container_id(deps, request.container_id)
    if container_id is not None:
        await deps.pods.remove_container(container_id)
    return pb.RemoveContainerResponse()


def status_of(deps: Deps, container: Container) -> pb.ContainerStatus:
    """The CRI status of ``container``, its image named from the image's record (see
    :mod:`runtime.images.naming`); every RPC that reports a container status uses this."""
    return _status(container, deps.images.lookup(container.image_id))


def _status(container: Container, image: ImageRecord | None) -> pb.ContainerStatus:
    return ctr.container_status(
        container,
        repo_tags=image.repo_tags if image is not None else (),
        repo_digests=image.repo_digests if image is not None else (),
    )


def container_status_serialized(deps: Deps, request: pb.ContainerStatusRequest) -> bytes:
    """ContainerStatus's answer as wire bytes, built once per state of the container's and its
    image's records (:mod:`cri.rpc.statuscache`); a verbose one is built per call."""
    if request.verbose:
        return container_status(deps, request).SerializeToString()
    container = resolve.require_container(deps, request.container_id)
    image = deps.images.lookup(container.image_id)
    return deps.statuses.get(
        ("ContainerStatus", container.id),
        (container, image),
        lambda: pb.ContainerStatusResponse(status=_status(container, image)),
    )


def container_status(deps: Deps, request: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
    container = resolve.require_container(deps, request.container_id)
    info: dict[str, str] = {}
    if request.verbose:
        info["info"] = json.dumps(
            {
                "pid": container.pid,
                "sandboxID": container.sandbox_id,
                "runtimeHandler": container.runtime_handler,
                "bundle": container.bundle,
                "snapshotKey": container.snapshot_key,
                "imageID": container.image_id,
                # what was asked and what the host applied ("" when nothing was)
                "apparmor": {
                    "requested": container.config.security.apparmor.type.value,
                    "applied": container.apparmor_profile,
                },
            },
            sort_keys=True,
        )
    return pb.ContainerStatusResponse(status=status_of(deps, container), info=info)


def list_containers(deps: Deps, request: pb.ListContainersRequest) -> pb.ListContainersResponse:
    return deps.lists.get("ListContainers", *_list_containers(deps, request))


def list_containers_serialized(deps: Deps, request: pb.ListContainersRequest) -> bytes:
    """ListContainers' answer as wire bytes (see :mod:`cri.rpc.listcache`)."""
    return deps.lists.get_serialized("ListContainers", *_list_containers(deps, request))


def _list_containers(
    deps: Deps, request: pb.ListContainersRequest
) -> tuple[bytes, tuple[int, ...], Callable[[], pb.ListContainersResponse]]:
    """(the cache key's filter, the version, the build) of a ListContainers answer."""
    pods = deps.pods
    # The filter may name a sandbox by id prefix, so the sandboxes' version counts too.
    version = (pods.sandboxes_generation(), pods.containers_generation())

    def build() -> pb.ListContainersResponse:
        containers = pods.list_containers()
        if request.HasField("filter"):
            containers = filters.ContainerFilter.from_pb(request.filter).apply(
                containers, sandbox_ids=[s.id for s in pods.list_sandboxes()]
            )
        return pb.ListContainersResponse(containers=[ctr.container_summary(c) for c in containers])

    return request.filter.SerializeToString(), version, build


async def update_container_resources(
    deps: Deps, request: pb.UpdateContainerResourcesRequest
) -> pb.UpdateContainerResourcesResponse:
    container = resolve.require_container(deps, request.container_id)
    if not request.HasField("linux"):
        raise InvalidArgument("UpdateContainerResources: linux resources are missing")
    await deps.pods.containers.update_resources(container.id, ctr.resources(request.linux))
    return pb.UpdateContainerResourcesResponse()


async def reopen_container_log(
    deps: Deps, request: pb.ReopenContainerLogRequest
) -> pb.ReopenContainerLogResponse:
    container = resolve.require_container(deps, request.container_id)
    await deps.pods.containers.reopen_log(container.id)
    return pb.ReopenContainerLogResponse()


def require_command(cmd: Sequence[str], what: str, *, may_be_empty: bool = False) -> list[str]:
    """An exec's argv as the kernel can take it: not empty, no NUL inside an argument."""
    if not cmd and not may_be_empty:
        raise InvalidArgument(f"{what}: cmd is empty")
    for n, arg in enumerate(cmd):
        if "\0" in arg:
            raise InvalidArgument(f"{what}: cmd[{n}] contains a NUL character")
    return list(cmd)


async def exec_sync(deps: Deps, request: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
    container = resolve.require_container(deps, request.container_id)
    require_command(request.cmd, "ExecSync")
    timeout = float(request.timeout) if request.timeout > 0 else None
    result = await deps.pods.containers.exec_sync(container.id, list(request.cmd), timeout=timeout)
    if result.timed_out:
        raise DeadlineExceeded(
            f"command {list(request.cmd)!r} in container {container.id} timed out after "
            f"{request.timeout}s"
        )
    return pb.ExecSyncResponse(
        stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code
    )
