"""pinnace.images.v1.Images: pulls and pushes with progress, and OCI archive import."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from cri.api.pinnace.images.v1 import images_pb2 as ipb
from cri.api.pinnace.images.v1 import images_pb2_grpc
from cri.errors import status_for
from cri.rpc.deps import Deps
from runtime.distribution.auth import Credentials, make_credentials
from runtime.errors import InvalidArgument
from runtime.images.progress import Phase, Progress, ProgressSink


def _credentials(msg: ipb.Credentials) -> Credentials | None:
    return make_credentials(
        username=msg.username,
        password=msg.password,
        identity_token=msg.identity_token,
        registry_token=msg.registry_token,
    )


def _message(progress: Progress) -> ipb.Progress:
    return ipb.Progress(
        ref=progress.ref,
        phase=progress.phase.value,
        digest=progress.digest,
        offset=progress.offset,
        total=progress.total,
    )


class _Throttle:
    """Forwards phase changes always, byte counts only every 1/100 of a blob, so a fast pull
    does not flood the stream."""

    def __init__(self, queue: asyncio.Queue[ipb.Progress | None]) -> None:
        self._queue = queue
        self._last: dict[tuple[str, Phase], int] = {}

    def __call__(self, progress: Progress) -> None:
        key = (progress.digest, progress.phase)
        step = max(progress.total // 100, 1)
        last = self._last.get(key)
        if last is not None and progress.offset - last < step and progress.offset != progress.total:
            return
        self._last[key] = progress.offset
        self._queue.put_nowait(_message(progress))


async def _stream(
    work: Callable[[ProgressSink], Awaitable[ipb.Progress]],
) -> AsyncIterator[ipb.Progress]:
    queue: asyncio.Queue[ipb.Progress | None] = asyncio.Queue()
    sink = _Throttle(queue)

    async def run() -> ipb.Progress:
        try:
            return await work(sink)
        finally:
            queue.put_nowait(None)

    task = asyncio.ensure_future(run())
    try:
        while (item := await queue.get()) is not None:
            yield item
        yield await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


def pull(deps: Deps, request: ipb.PullRequest) -> AsyncIterator[ipb.Progress]:
    if not request.image:
        raise InvalidArgument("Pull: image is empty; give a reference like busybox:1.36")

    async def work(sink: ProgressSink) -> ipb.Progress:
        count = deps.metrics.pull_sink()

        def both(progress: Progress) -> None:
            count(progress)
            sink(progress)

        try:
            record = await deps.images.pull(
                request.image, credentials=_credentials(request.credentials), progress=both
            )
        except Exception as exc:
            deps.metrics.image_pulls.labels(status_for(exc).name).inc()
            raise
        deps.metrics.image_pulls.labels("success").inc()
        deps.metrics.images.set(deps.images.count())
        return ipb.Progress(ref=request.image, phase=Phase.DONE.value, image_id=record.id)

    return _stream(work)


def push(deps: Deps, request: ipb.PushRequest) -> AsyncIterator[ipb.Progress]:
    if not request.image:
        raise InvalidArgument("Push: image is empty; give the local image's name or id")

    async def work(sink: ProgressSink) -> ipb.Progress:
        digest = await deps.images.push(
            request.image,
            target=request.target,
            credentials=_credentials(request.credentials),
            progress=sink,
        )
        return ipb.Progress(ref=request.target or request.image, phase="done", digest=digest)

    return _stream(work)


async def import_(deps: Deps, request: ipb.ImportRequest) -> ipb.ImportResponse:
    if not request.path:
        raise InvalidArgument("Import: path is empty; give an OCI layout directory or archive")
    records = await deps.images.import_layout(Path(request.path), name=request.name)
    return ipb.ImportResponse(
        images=[ipb.ImportedImage(id=r.id, names=list(r.names)) for r in records]
    )


async def untag(deps: Deps, request: ipb.UntagRequest) -> ipb.UntagResponse:
    record = await deps.images.untag(request.name)
    deps.metrics.images.set(deps.images.count())
    return ipb.UntagResponse(id=record.id, names=list(record.names))


def servicer(deps: Deps) -> Any:
    """The Images servicer bound to ``deps``."""

    class ImagesServicer(images_pb2_grpc.ImagesServicer):
        def Pull(self, request: ipb.PullRequest, context: Any) -> AsyncIterator[ipb.Progress]:
            return pull(deps, request)

        def Push(self, request: ipb.PushRequest, context: Any) -> AsyncIterator[ipb.Progress]:
            return push(deps, request)

        async def Import(self, request: ipb.ImportRequest, context: Any) -> ipb.ImportResponse:
            return await import_(deps, request)

        async def Untag(self, request: ipb.UntagRequest, context: Any) -> ipb.UntagResponse:
            return await untag(deps, request)

    return ImagesServicer()
