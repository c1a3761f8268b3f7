"""The image service: what the CRI ImageService and the CLI ask of images, in domain terms.

It owns the pieces below it (content store, snapshotter, image records, puller, collector)
only by reference; the composition root builds them. Reads (list, status) come from the image
store's memory; pulls, removals and imports run their blocking parts in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.content.interfaces import Store
from runtime.distribution.auth import Credentials
from runtime.distribution.client import RegistryClient
from runtime.distribution.reference import parse_reference
from runtime.errors import InvalidArgument, NotFound
from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.images import archive
from runtime.images.gc import Collector
from runtime.images.progress import Phase, Progress, ProgressSink, discard
from runtime.images.pull import Puller
from runtime.images.push import push_image
from runtime.images.store import ImageRecord, ImageStore
from runtime.ocispec import Descriptor
from runtime.snapshots.interfaces import Kind, Snapshotter

log = logging.getLogger(__name__)

# (credentials sent with the request, the registry host they are for or None for any)
ClientFactory = Callable[[Credentials | None, str | None], RegistryClient]


@dataclass(frozen=True, slots=True)
class FsUsage:
    """Bytes and inodes the image store uses on one filesystem; ``mountpoint`` is the
    directory that names that filesystem to the kubelet (any directory on it will do; like
    containerd we give the snapshotter's root, which is also what containers' writable layers
    report as their filesystem)."""

    mountpoint: str
    used_bytes: int
    inodes_used: int
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class Filesystems:
    """ImageFsInfo's answer: the image filesystem, and the containers' filesystem only when
    their writable layers (the snapshotter's root) are on another device than the content
    store."""

    image: FsUsage
    containers: FsUsage | None = None


class ImageService:
    """Pull, list, inspect, remove, push and import images."""

    def __init__(
        self,
        *,
        content: Store,
        snapshotter: Snapshotter,
        images: ImageStore,
        puller: Puller,
        collector: Collector,
        client_factory: ClientFactory,
        store_dirs: tuple[Path, ...],
        pinned_images: tuple[str, ...] = (),
        usage_max_age: float = 10.0,
        fs_id: Path | None = None,
        exchange: Exchange | None = None,
    ) -> None:
        self._exchange = exchange
        self._content = content
        self._sn = snapshotter
        self.store = images
        self._puller = puller
        self._collector = collector
        self._client_factory = client_factory
        self._store_dirs = store_dirs
        self._pinned = self._normalise_all(pinned_images)
        self._writers = 0
        self._gc_pending = False
        self._usage: Filesystems | None = None
        self._usage_max_age = usage_max_age
        self._usage_task: asyncio.Task[Filesystems] | None = None
        # the directory reported as the filesystem of images and writable layers
        self.fs_id = str(fs_id) if fs_id is not None else str(store_dirs[-1])
        self._writable_total: Callable[[], tuple[int, int]] = lambda: (0, 0)

    @staticmethod
    def _normalise_all(refs: tuple[str, ...]) -> frozenset[str]:
        out = set()
        for text in refs:
            with contextlib.suppress(InvalidArgument):
                out.add(str(parse_reference(text)))
        return frozenset(out)

    # ---- reads ---------------------------------------------------------------------------

    def is_pinned(self, record: ImageRecord) -> bool:
        return any(name in self._pinned for name in record.repo_tags)

    def find(self, text: str) -> ImageRecord | None:
        """The image ``text`` names: an id, an id prefix, or a reference. None if absent."""
        if not text:
            raise InvalidArgument("image reference is empty: give a name, tag, digest or id")
        name: str | None = None
        with contextlib.suppress(InvalidArgument):
            ref = parse_reference(text)
            name = str(ref)
        record = self.store.lookup(text, normalized_name=name)
        if record is None and name is not None:
            # a bare hex id prefix also parses as a repository name
            record = self.store.lookup(text)
        return record

    def count(self) -> int:
        """How many images the node has (from memory)."""
        return len(self.store.list())

    def lookup(self, image_id: str) -> ImageRecord | None:
        """The image with this id (config digest), if the node still has it."""
        return self.store.lookup(image_id)

    def images(self, *, name_filter: str = "") -> list[ImageRecord]:
        records = self.store.list()
        if not name_filter:
            return records
        match = self.find(name_filter)
        return [r for r in records if match is not None and r.id == match.id]

    # ---- pull ----------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        self._writers += 1
        try:
            yield
        finally:
            self._writers -= 1
            if self._writers == 0 and self._gc_pending:
                self._gc_pending = False
                await self.collect()

    async def pull(
        self,
        text: str,
        *,
        credentials: Credentials | None = None,
        credentials_host: str | None = None,
        progress: ProgressSink = discard,
    ) -> ImageRecord:
        ref = parse_reference(text)
        if ref.is_digest_ref and not ref.tag:
            # Content named by digest cannot change, and an image's record is written only
            # after its snapshots are committed: one recorded under this repo digest is the
            # answer, without a registry round trip (kubelet re-pulls pinned images).
            present = self.store.lookup(str(ref), normalized_name=str(ref))
            if present is not None and await self._puller.is_whole(present):
                progress(Progress(str(ref), Phase.DONE))
                return present
        async with self._writing():
            client = self._client_factory(credentials, credentials_host)
            before = self._names()
            try:
                record = await self._puller.pull(client, ref, progress)
            finally:
                await client.aclose()
            self._announce(before)
        log.info("pulled %s as %s", ref, record.id)
        return record

    # ---- push and import ------------------------------------------------------------------

    async def push(
        self,
        text: str,
        *,
        target: str = "",
        credentials: Credentials | None = None,
        progress: ProgressSink = discard,
    ) -> str:
        """Push the local image ``text`` names to ``target`` (default: its own name)."""
        record = self.find(text)
        if record is None:
            raise NotFound(f"image {text!r} not found; pull or import it first")
        if not target:
            if not record.repo_tags:
                raise InvalidArgument(
                    f"image {record.id} has no tag to push to; give a target reference"
                )
            target = record.repo_tags[0]
        ref = parse_reference(target)
        client = self._client_factory(credentials, None)
        try:
            return await push_image(
                content=self._content,
                client=client,
                record=record,
                target=ref,
                progress=progress,
            )
        finally:
            await client.aclose()

    async def import_layout(self, path: Path, *, name: str = "") -> list[ImageRecord]:
        """Import every image of the OCI layout directory or archive at ``path``."""
        async with self._writing():
            index = await asyncio.to_thread(archive.read_layout, self._content, path)
            records = []
            before = self._names()
            for entry in archive.entries(index, name=name):

                async def local(desc: Descriptor) -> bytes:
                    return await asyncio.to_thread(self._content.read_blob, desc.digest)

                docs = await self._puller.documents(entry.target, local, ref=str(path))
                await self._puller.unpack(docs, _NoSource(path), discard, str(path))
                tags = [entry.name] if entry.name else []
                records.append(
                    await asyncio.to_thread(self._puller.record, docs, tags=tags, digests=[])
                )
            self._announce(before)
        return records

    # ---- remove and collect ---------------------------------------------------------------

    async def remove(self, text: str) -> ImageRecord | None:
        """Remove the image ``text`` names, with all its names. None if it was absent."""
        record = self.find(text)
        if record is None:
            return None
        before = self._names()
        removed = await asyncio.to_thread(self.store.remove, record.id)
        self._announce(before)
        await self.collect()
        return removed

    async def untag(self, text: str) -> ImageRecord:
        """Remove one name of an image (``busybox:1.36``, normalised as pulls are), keeping
        the image and its other names; an image left with no name stays until removed, as
        podman's untag does. Raises NotFound when no image has that name."""
        if not text:
            raise InvalidArgument("untag: the name is empty; give a tag like busybox:1.36")
        name = str(parse_reference(text))
        record = self.store.lookup(name, normalized_name=name)
        if record is None or name not in record.names:
            raise NotFound(f"no image is named {name}")
        before = self._names()
        updated = await asyncio.to_thread(self.store.untag, name)
        self._announce(before)
        if updated is None:
            raise NotFound(f"no image is named {name}")
        return updated

    # ---- events -----------------------------------------------------------------------------

    def _names(self) -> dict[str, str]:
        """Every image name (tags and digests) and the image id it names, from memory."""
        return {n: r.id for r in self.store.list() for n in (*r.repo_tags, *r.repo_digests)}

    def _announce(self, before: dict[str, str]) -> None:
        """Publish what changed in the image records since ``before`` (they are committed):
        /images/create for a new name, /images/update for a name that now names other content,
        /images/delete for a name gone."""
        if self._exchange is None:
            return
        after = self._names()
        for name in sorted(after.keys() | before.keys()):
            old, new = before.get(name), after.get(name)
            if old == new:
                continue
            if old is None:
                event: ev.Event = ev.ImageCreate(name=name)
            elif new is None:
                event = ev.ImageDelete(name=name)
            else:
                event = ev.ImageUpdate(name=name)
            self._exchange.publish(ev.K8S_NAMESPACE, event)

    async def collect(self, *, startup: bool = False) -> None:
        if self._writers:
            self._gc_pending = True
            return
        await asyncio.to_thread(self._collector.collect, startup=startup)
        self._usage = None

    # ---- filesystem usage -----------------------------------------------------------------

    async def fs_usage(self) -> FsUsage:
        """The image filesystem's usage (see :meth:`filesystems`)."""
        return (await self.filesystems()).image

    async def filesystems(self) -> Filesystems:
        """Usage of the image store, measured on a worker thread and cached: a reading older
        than ``usage_max_age`` seconds is returned as it is while a new one is taken in the
        background, so only the very first call waits for a walk of the store."""
        cached = self._usage
        stale = cached is None or time.time_ns() - cached.image.timestamp_ns > (
            self._usage_max_age * 1e9
        )
        if stale and (self._usage_task is None or self._usage_task.done()):
            self._usage_task = asyncio.ensure_future(asyncio.to_thread(self._measure))
            self._usage_task.add_done_callback(self._measured)
        if cached is not None:
            return cached
        assert self._usage_task is not None
        return await asyncio.shield(self._usage_task)

    def _measured(self, task: asyncio.Task[Filesystems]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._usage = task.result()

    def set_writable_usage(self, total: Callable[[], tuple[int, int]]) -> None:
        """Where the containers' writable-layer total comes from (the composition root wires
        the background accounting in once the pod layer exists)."""
        self._writable_total = total

    def _committed_layers(self) -> tuple[int, int]:
        used = inodes = 0
        for info in self._sn.walk():
            if info.kind is not Kind.COMMITTED:
                continue
            try:
                usage = self._sn.usage(info.key)
            except (NotFound, OSError):
                continue
            used += usage.size
            inodes += usage.inodes
        # removed layers still on disk until the snapshotter's background deletion reaches them
        trash = self._sn.pending_removal()
        return used + trash.size, inodes + trash.inodes

    def _measure(self) -> Filesystems:
        return measure_filesystems(
            content_dir=self._store_dirs[0],
            fs_id=self.fs_id,
            layers=self._committed_layers(),
            writable=self._writable_total(),
        )


class _NoSource:
    """The blob source of an import: every blob must already be in the content store."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def fetch(self, desc: Descriptor, *, offset: int) -> AsyncIterator[bytes]:
        raise InvalidArgument(f"{self._path} lacks blob {desc.digest} that its manifest lists")


def measure_filesystems(
    *,
    content_dir: Path,
    fs_id: str,
    layers: tuple[int, int],
    writable: tuple[int, int],
) -> Filesystems:
    """Blocking: ImageFsInfo's figures. ``layers`` are the bytes and inodes of the unpacked
    image layers (committed snapshots, measured once at commit), ``writable`` those of the
    containers' writable layers (measured in the background by ``runtime.stats.layers``);
    only the content store (blobs: few, big files) is walked here. Normally everything is on
    one filesystem, named by the snapshotter's root ``fs_id``; when that root is on another
    device than the content store, the writable layers are the containers' filesystem."""
    content = _measure_dirs([content_dir])
    try:
        split = os.stat(content_dir).st_dev != os.stat(fs_id).st_dev
    except OSError:
        split = False
    now = time.time_ns()
    if not split:
        return Filesystems(
            image=FsUsage(
                mountpoint=fs_id,
                used_bytes=content[0] + layers[0] + writable[0],
                inodes_used=content[1] + layers[1] + writable[1],
                timestamp_ns=now,
            )
        )
    return Filesystems(
        image=FsUsage(
            mountpoint=str(content_dir),
            used_bytes=content[0] + layers[0],
            inodes_used=content[1] + layers[1],
            timestamp_ns=now,
        ),
        containers=FsUsage(
            mountpoint=fs_id, used_bytes=writable[0], inodes_used=writable[1], timestamp_ns=now
        ),
    )


def _measure_dirs(tops: list[Path]) -> tuple[int, int]:
    used = inodes = 0
    seen: set[tuple[int, int]] = set()
    for top in tops:
        for path in _walk(top):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            inodes += 1
            used += st.st_blocks * 512
    return used, inodes


def _walk(top: Path) -> Iterator[str]:
    if not top.exists():
        return
    yield str(top)
    for root, dirs, files in os.walk(top):
        for name in dirs:
            yield os.path.join(root, name)
        for name in files:
            yield os.path.join(root, name)


def credentials_lookup(
    configured: Mapping[str, Credentials], request: Credentials | None, registry: str | None
) -> Callable[[str], Credentials | None]:
    """Credentials for a registry host: those sent with the request (for the pulled image's
    registry), else those configured for that host."""

    def lookup(host: str) -> Credentials | None:
        if request is not None and (registry is None or host == registry):
            return request
        return configured.get(host)

    return lookup


__all__ = ["Filesystems", "FsUsage", "ImageService", "credentials_lookup", "measure_filesystems"]
