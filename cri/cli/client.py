"""The CLI's one way to talk to pinnaced: a typed client over one gRPC channel.

Every method is one RPC with its request built from keyword arguments and its reply's useful
part returned typed, so commands never juggle stubs or ``Any``. Quick calls carry the client's
``timeout``; calls that can legitimately take long (create, start, stop with a grace period,
pulls) take their own. The raw stubs stay reachable (``runtime``, ``image``, ``images``,
``events``) for commands other modules add.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc

from cri.api.pinnace.events.v1 import events_pb2 as epb
from cri.api.pinnace.events.v1 import events_pb2_grpc as epb_grpc
from cri.api.pinnace.images.v1 import images_pb2 as ipb
from cri.api.pinnace.images.v1 import images_pb2_grpc as ipb_grpc
from cri.api.runtime.v1 import api_pb2 as pb
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc
from cri.wire import unix_address
from runtime.errors import DeadlineExceeded, InvalidArgument

#: Seconds a create or start may take (an image's first unpack, a slow CNI plugin).
LONG_CALL = 120.0


class Client:
    """Typed calls to pinnaced's RuntimeService, ImageService, Images and Events APIs."""

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        self.address = unix_address(address)
        if not self.address.startswith("unix://"):
            raise InvalidArgument(
                f"--address {address}: pinnaced serves a unix socket; give its path or unix://PATH"
            )
        self.timeout = timeout
        self.channel = grpc.insecure_channel(self.address)
        self.runtime = pb_grpc.RuntimeServiceStub(self.channel)
        self.image = pb_grpc.ImageServiceStub(self.channel)
        self.images = ipb_grpc.ImagesStub(self.channel)
        self.events = epb_grpc.EventsStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def reachable(self, *, timeout: float = 1.0) -> bool:
        """Whether a connection to the daemon can be made now (a fact, not a guess from an
        error's words)."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True

    # -- runtime information -----------------------------------------------------------
    def version(self) -> pb.VersionResponse:
        reply: pb.VersionResponse = self.runtime.Version(pb.VersionRequest(), timeout=self.timeout)
        return reply

    def status(self, *, verbose: bool = False) -> pb.StatusResponse:
        reply: pb.StatusResponse = self.runtime.Status(
            pb.StatusRequest(verbose=verbose), timeout=self.timeout
        )
        return reply

    def runtime_config(self) -> pb.RuntimeConfigResponse:
        reply: pb.RuntimeConfigResponse = self.runtime.RuntimeConfig(
            pb.RuntimeConfigRequest(), timeout=self.timeout
        )
        return reply

    # -- pods ----------------------------------------------------------------------------
    def list_pods(self, *, labels: Mapping[str, str] | None = None) -> list[pb.PodSandbox]:
        request = pb.ListPodSandboxRequest(
            filter=pb.PodSandboxFilter(label_selector=dict(labels or {}))
        )
        return list(self.runtime.ListPodSandbox(request, timeout=self.timeout).items)

    def pod_status(self, pod_id: str, *, verbose: bool = False) -> pb.PodSandboxStatusResponse:
        reply: pb.PodSandboxStatusResponse = self.runtime.PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose),
            timeout=self.timeout,
        )
        return reply

    def run_pod(self, config: pb.PodSandboxConfig, *, runtime_handler: str = "") -> str:
        reply = self.runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler),
            timeout=max(self.timeout, LONG_CALL),
        )
        return str(reply.pod_sandbox_id)

    def stop_pod(self, pod_id: str) -> None:
        self.runtime.StopPodSandbox(
            pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=max(self.timeout, LONG_CALL)
        )

    def remove_pod(self, pod_id: str) -> None:
        self.runtime.RemovePodSandbox(
            pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
            timeout=max(self.timeout, LONG_CALL),
        )

    # -- containers ------------------------------------------------------------------------
    def list_containers(
        self,
        *,
        pod_id: str = "",
        labels: Mapping[str, str] | None = None,
        state: int | None = None,
    ) -> list[pb.Container]:
        request = pb.ListContainersRequest(
            filter=pb.ContainerFilter(pod_sandbox_id=pod_id, label_selector=dict(labels or {}))
        )
        if state is not None:
            request.filter.state.state = state  # type: ignore[assignment]
        return list(self.runtime.ListContainers(request, timeout=self.timeout).containers)

    def container_status(
        self, container_id: str, *, verbose: bool = False
    ) -> pb.ContainerStatusResponse:
        reply: pb.ContainerStatusResponse = self.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id, verbose=verbose),
            timeout=self.timeout,
        )
        return reply

    def create_container(
        self, pod_id: str, config: pb.ContainerConfig, sandbox: pb.PodSandboxConfig
    ) -> str:
        reply = self.runtime.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox),
            timeout=max(self.timeout, LONG_CALL),
        )
        return str(reply.container_id)

    def start_container(self, container_id: str) -> None:
        self.runtime.StartContainer(
            pb.StartContainerRequest(container_id=container_id),
            timeout=max(self.timeout, LONG_CALL),
        )

    def stop_container(self, container_id: str, *, grace: int) -> None:
        self.runtime.StopContainer(
            pb.StopContainerRequest(container_id=container_id, timeout=grace),
            timeout=grace + self.timeout,
        )

    def remove_container(self, container_id: str) -> None:
        self.runtime.RemoveContainer(
            pb.RemoveContainerRequest(container_id=container_id), timeout=self.timeout
        )

    def exec_sync(
        self, container_id: str, cmd: Sequence[str], *, timeout: int
    ) -> pb.ExecSyncResponse:
        reply: pb.ExecSyncResponse = self.runtime.ExecSync(
            pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout),
            timeout=timeout + self.timeout if timeout else None,
        )
        return reply

    def container_stats(self) -> list[pb.ContainerStats]:
        reply = self.runtime.ListContainerStats(
            pb.ListContainerStatsRequest(), timeout=self.timeout
        )
        return list(reply.stats)

    def pod_stats(self) -> list[pb.PodSandboxStats]:
        reply = self.runtime.ListPodSandboxStats(
            pb.ListPodSandboxStatsRequest(), timeout=self.timeout
        )
        return list(reply.stats)

    def container_events(self) -> ContainerEvents:
        """A live subscription to GetContainerEvents; close it when done."""
        return ContainerEvents(self.runtime.GetContainerEvents(pb.GetEventsRequest()))

    def wait_exited(self, container_id: str, *, timeout: float) -> pb.ContainerStatus:
        """The container's status once it has exited: subscribe to its events first, then look
        at its status (so an exit between the two is not missed), then wait for the event."""
        with self.container_events() as events:
            status = self.container_status(container_id).status
            if status.state == pb.CONTAINER_EXITED:
                return status
            if not events.wait_for(container_id, pb.CONTAINER_STOPPED_EVENT, timeout=timeout):
                raise DeadlineExceeded(f"container {container_id[:13]} still runs after {timeout}s")
        return self.container_status(container_id).status

    # -- images ------------------------------------------------------------------------------
    def list_images(self) -> list[pb.Image]:
        return list(self.image.ListImages(pb.ListImagesRequest(), timeout=self.timeout).images)

    def image_status(self, image: str, *, verbose: bool = False) -> pb.ImageStatusResponse:
        reply: pb.ImageStatusResponse = self.image.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=image), verbose=verbose),
            timeout=self.timeout,
        )
        return reply

    def find_image(self, image: str) -> pb.Image | None:
        reply = self.image_status(image)
        return reply.image if reply.HasField("image") else None

    def remove_image(self, image_id: str) -> None:
        self.image.RemoveImage(
            pb.RemoveImageRequest(image=pb.ImageSpec(image=image_id)), timeout=self.timeout
        )

    def untag(self, name: str) -> ipb.UntagResponse:
        reply: ipb.UntagResponse = self.images.Untag(
            ipb.UntagRequest(name=name), timeout=self.timeout
        )
        return reply

    def pull(
        self, image: str, *, credentials: ipb.Credentials | None = None
    ) -> Iterator[ipb.Progress]:
        stream: Iterator[ipb.Progress] = self.images.Pull(
            ipb.PullRequest(image=image, credentials=credentials or ipb.Credentials())
        )
        return stream

    def push(
        self, image: str, *, target: str = "", credentials: ipb.Credentials | None = None
    ) -> Iterator[ipb.Progress]:
        stream: Iterator[ipb.Progress] = self.images.Push(
            ipb.PushRequest(
                image=image, target=target, credentials=credentials or ipb.Credentials()
            )
        )
        return stream

    def import_images(self, path: str, *, name: str = "") -> list[ipb.ImportedImage]:
        reply = self.images.Import(ipb.ImportRequest(path=path, name=name))
        return list(reply.images)

    # -- pinnace events ----------------------------------------------------------------------
    def subscribe(self, filters: Sequence[str]) -> Any:
        """The Events API stream (iterable of ``Envelope``; ``cancel()`` ends it)."""
        return self.events.Subscribe(epb.SubscribeRequest(filters=list(filters)))


class ContainerEvents:
    """A GetContainerEvents stream read on a thread, so a caller can wait for one container's
    event with a deadline. A context manager: leaving it cancels the stream."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._cond = threading.Condition()
        self._seen: list[tuple[str, int]] = []
        self._ended: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._read, name="container-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._call:
                with self._cond:
                    self._seen.append((event.container_id, event.container_event_type))
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            with self._cond:
                self._ended = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def wait_for(self, container_id: str, event_type: int, *, timeout: float) -> bool:
        """True once ``container_id`` had an ``event_type`` event; False at the deadline.
        Raises the stream's error if the daemon ended it."""
        wanted = (container_id, event_type)

        def arrived() -> bool:
            return wanted in self._seen or self._done

        with self._cond:
            self._cond.wait_for(arrived, timeout=timeout)
            if wanted in self._seen:
                return True
            if self._ended is not None and not self._cancelled():
                raise self._ended
            return False

    def _cancelled(self) -> bool:
        code = getattr(self._ended, "code", None)
        return callable(code) and code() == grpc.StatusCode.CANCELLED

    def close(self) -> None:
        self._call.cancel()
        self._thread.join(timeout=5)

    def __enter__(self) -> ContainerEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
