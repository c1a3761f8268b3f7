"""Layers into snapshots: stream a layer's compressed bytes into the content store while
decompressing and applying them to a snapshot, so that unpacking overlaps downloading.

One layer's path through here::

    registry chunks ──► ByteFeed ──► TeeToIngest ──► decompress ──► HashingReader ──► apply_layer
      (event loop)        (thread boundary)  │ (content writer:                (diffID)   (snapshot
                                             ▼  digest verified at commit)               layer dir)

Snapshots are keyed by chain id, so a layer shared by several images is unpacked once. With a
snapshotter whose layers are independent (overlay), every layer of an image is unpacked at the
same time into a parentless active snapshot and linked into the chain at commit, in order;
otherwise (native) each layer waits for its parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from runtime.aio import shielded
from runtime.content.interfaces import BlobFiles, BlobStore, ContentWriter, ReplayableWriter
from runtime.diff.apply import apply_layer
from runtime.diff.compression import decompressing_reader, detect
from runtime.diff.stream import ByteFeed, HashingReader
from runtime.errors import DeadlineExceeded, DigestMismatch, InvalidArgument, NotFound
from runtime.images.progress import Phase, Progress, ProgressSink
from runtime.ocispec import Descriptor
from runtime.snapshots.interfaces import Snapshotter

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20


class BlobSource(Protocol):
    """Where a layer's compressed bytes come from when the content store lacks them."""

    def fetch(self, desc: Descriptor, *, offset: int) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """One layer to make available as the committed snapshot ``chain_id``."""

    desc: Descriptor
    diff_id: str
    chain_id: str
    parent_chain_id: str


class _TeeToIngest:
    """A reader that first replays the bytes an earlier, interrupted ingest already holds,
    then passes on the feed's bytes while appending them to the content writer."""

    def __init__(
        self, prefix: _LimitedReader | None, feed: ByteFeed, writer: ContentWriter
    ) -> None:
        self._prefix = prefix
        self._feed = feed
        self._writer = writer

    def read(self, n: int = -1) -> bytes:
        if self._prefix is not None:
            data = self._prefix.read(n if n > 0 else _READ_SIZE)
            if data:
                return data
            self._prefix.close()
            self._prefix = None
        data = self._feed.read(n)
        if data:
            self._writer.write(data)
        return data


def _drain(reader: HashingReader) -> None:
    while reader.read(_READ_SIZE):
        pass


class Unpacker:
    """Makes chains of layers exist as committed snapshots, fetching what is missing."""

    def __init__(
        self,
        *,
        content: BlobStore,
        snapshotter: Snapshotter,
        max_concurrent: int,
        progress_timeout: float,
    ) -> None:
        self._content = content
        self._sn = snapshotter
        self._independent = snapshotter.independent_layers
        self._limit = asyncio.Semaphore(max(1, max_concurrent))
        # Snapshots are prepared ahead of the download slots, one at a time: the snapshotter
        # serialises them anyway, and an image of many layers must not fill the default
        # executor with hops waiting on its lock (every other to_thread would wait too).
        self._preparing = asyncio.Semaphore(1)
        self._progress_timeout = progress_timeout
        # chain id -> the task making that snapshot; concurrent pulls of images that share
        # layers wait on one another's work instead of repeating it.
        self._flights: dict[str, asyncio.Task[None]] = {}

    def has_snapshot(self, chain_id: str) -> bool:
        """Blocking: whether ``chain_id`` is a committed snapshot ("" — no layers — always is)."""
        return not chain_id or self._snapshot_exists(chain_id)

    def _snapshot_exists(self, key: str) -> bool:
        try:
            self._sn.stat(key)
        except NotFound:
            return False
        return True

    def _land(self, chain_id: str, _flight: object) -> None:
        self._flights.pop(chain_id, None)

    async def ensure(
        self, plans: Sequence[LayerPlan], source: BlobSource, progress: ProgressSink, ref: str
    ) -> None:
        """Return once every ``plans[i].chain_id`` is a committed snapshot."""
        previous: asyncio.Task[None] | None = None
        tasks: list[asyncio.Task[None]] = []
        for plan in plans:
            # No await between looking a flight up and registering one: concurrent pulls of
            # the same layers must find each other's flights.
            flight = self._flights.get(plan.chain_id)
            if flight is None:
                flight = asyncio.create_task(self._build(plan, previous, source, progress, ref))
                self._flights[plan.chain_id] = flight
                flight.add_done_callback(partial(self._land, plan.chain_id))
            tasks.append(flight)
            previous = flight
        if tasks:
            # shield: a caller that gives up (kubelet's deadline) does not cancel work another
            # pull, or kubelet's retry, is waiting for.
            await asyncio.shield(asyncio.gather(*tasks))

    async def _build(
        self,
        plan: LayerPlan,
        parent: asyncio.Task[None] | None,
        source: BlobSource,
        progress: ProgressSink,
        ref: str,
    ) -> None:
        if await asyncio.to_thread(self._snapshot_exists, plan.chain_id):
            progress(Progress(ref, Phase.EXISTS, plan.desc.digest, plan.desc.size, plan.desc.size))
            return
        key = f"extract-{uuid.uuid4().hex[:12]}-{plan.chain_id}"
        if not self._independent and parent is not None:
            await parent
        # The snapshot is prepared before waiting for a download slot, so that a slot that
        # frees goes straight to the next layer's request.
        prepare_parent = "" if self._independent else plan.parent_chain_id
        async with self._preparing:
            target, stored = await asyncio.to_thread(
                self._prepare, key, prepare_parent, plan.desc.digest
            )
        try:
            await self._fetch_and_apply(plan, target, stored, source, progress, ref)
        except BaseException:
            await shielded(asyncio.to_thread(self._sn.remove, key))
            raise
        try:
            if parent is not None:
                await parent
            await asyncio.to_thread(self._commit, plan, key)
        except BaseException:
            await shielded(asyncio.to_thread(_remove_quietly, self._sn, key))
            raise
        progress(Progress(ref, Phase.DONE, plan.desc.digest, plan.desc.size, plan.desc.size))

    def _prepare(self, key: str, parent: str, digest: str) -> tuple[Path, bool]:
        """Blocking: prepare snapshot ``key``; its layer directory, and whether the content
        store already holds the blob ``digest`` (one thread hop for the three)."""
        self._sn.prepare(key, parent)
        try:
            return self._sn.layer_dir(key), self._content.exists(digest)
        except BaseException:
            _remove_quietly(self._sn, key)
            raise

    def _commit(self, plan: LayerPlan, key: str) -> None:
        """Blocking: commit ``key`` as ``plan.chain_id`` (linked to its parent where layers are
        independent), or drop it if a concurrent pull committed that chain first."""
        if self._snapshot_exists(plan.chain_id):
            self._sn.remove(key)
        elif self._independent:
            self._sn.commit(plan.chain_id, key, parent=plan.parent_chain_id or None)
        else:
            self._sn.commit(plan.chain_id, key)

    async def _fetch_and_apply(
        self,
        plan: LayerPlan,
        target: Path,
        stored: bool,
        source: BlobSource,
        progress: ProgressSink,
        ref: str,
    ) -> None:
        desc = plan.desc
        if stored:
            progress(Progress(ref, Phase.UNPACKING, desc.digest, 0, desc.size))
            compression = detect(desc.media_type, b"")
            content, overlay = self._content, self._independent

            def from_store() -> str:
                with _open_blob(content, desc.digest) as raw:
                    hashed = HashingReader(decompressing_reader(raw, compression))
                    _apply(hashed, target, overlay=overlay, digest=desc.digest)
                    _drain(hashed)
                    return hashed.digest()

            async with self._limit:
                _check_diff_id(plan, await asyncio.to_thread(from_store))
            return

        # A download slot is held from the request until the last byte is received (not
        # until the unpacker is done with the tail in the feed): the next layer's download
        # overlaps the end of this one's unpacking.
        await self._limit.acquire()
        slot = _Slot(self._limit)
        try:
            await self._download_and_apply(plan, target, source, progress, ref, slot)
        finally:
            slot.release()

    async def _download_and_apply(
        self,
        plan: LayerPlan,
        target: Path,
        source: BlobSource,
        progress: ProgressSink,
        ref: str,
        slot: _Slot,
    ) -> None:
        desc = plan.desc
        compression = detect(desc.media_type, b"")
        overlay = self._independent
        content = self._content
        writer = await asyncio.to_thread(
            content.writer,
            f"pull-{desc.digest}",
            expected_digest=desc.digest,
            expected_size=desc.size,
        )
        if writer.offset and not isinstance(writer, ReplayableWriter):
            # this store cannot hand back what the interrupted ingest holds: start afresh
            await asyncio.to_thread(writer.abort)
            writer = await asyncio.to_thread(
                content.writer,
                f"pull-{desc.digest}",
                expected_digest=desc.digest,
                expected_size=desc.size,
            )
        offset = writer.offset
        feed = ByteFeed()

        def consume() -> str:
            prefix = None
            if offset:
                assert isinstance(writer, ReplayableWriter)
                prefix = _LimitedReader(writer.open_written(), offset)
            tee = _TeeToIngest(prefix, feed, writer)
            hashed = HashingReader(decompressing_reader(tee, compression))
            try:
                _apply(hashed, target, overlay=overlay, digest=desc.digest)
                _drain(hashed)
            except Exception as exc:
                # Bytes that do not decompress or untar are most often bytes that are not the
                # layer at all: read the rest, and if the digest is wrong, say that instead.
                try:
                    while tee.read(_READ_SIZE):
                        pass
                    writer.commit()
                except DigestMismatch as mismatch:
                    raise mismatch from exc
                except Exception:
                    raise exc from None
                raise
            while tee.read(_READ_SIZE):  # compressed trailer after the end of the tar stream
                pass
            writer.commit()
            return hashed.digest()

        async def produce() -> None:
            received = offset
            progress(Progress(ref, Phase.DOWNLOADING, desc.digest, received, desc.size))
            chunks = source.fetch(desc, offset=offset)
            loop = asyncio.get_running_loop()
            stall = self._progress_timeout
            try:
                # One deadline moved on by every chunk (a wait_for would be a task per chunk);
                # waiting for room in the feed (the unpacker is busy) does not count.
                async with asyncio.timeout(loop.time() + stall) as deadline:
                    async for chunk in chunks:
                        deadline.reschedule(None)
                        await feed.afeed(chunk)
                        received += len(chunk)
                        progress(Progress(ref, Phase.DOWNLOADING, desc.digest, received, desc.size))
                        deadline.reschedule(loop.time() + stall)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"pull of {ref} made no progress for {stall:.0f}s "
                    f"while downloading layer {desc.digest}"
                ) from None
            finally:
                await _aclose(chunks)
                slot.release()
            feed.close()

        producer = asyncio.ensure_future(produce())
        consumer = asyncio.ensure_future(asyncio.to_thread(consume))
        try:
            await asyncio.wait({producer, consumer}, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            # Whatever ended first (a network error, bad bytes, our caller giving up), make
            # the other end too: the consumer thread sees the failure, the producer a cancel.
            if producer.done() and not producer.cancelled() and producer.exception():
                feed.fail(_exception(producer))
            elif not producer.done():
                if consumer.done():
                    feed.close_reader()
                else:
                    feed.fail(ConnectionAbortedError("pull abandoned"))
                producer.cancel()
            await shielded(asyncio.wait({producer, consumer}))
        if consumer.exception() is None:
            _check_diff_id(plan, consumer.result())
            return
        error = _exception(consumer)
        if not isinstance(error, DigestMismatch) and not producer.cancelled():
            error = producer.exception() or error
        # A digest mismatch discards the ingest; anything else keeps it for resumption.
        if isinstance(error, DigestMismatch):
            await asyncio.to_thread(_abort_quietly, writer)
        else:
            await asyncio.to_thread(_close_quietly, writer)
        raise error


class _Slot:
    """One acquired place of a semaphore, released once however many times it is asked to."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore: asyncio.Semaphore | None = semaphore

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


def _open_blob(content: BlobStore, digest: str) -> BinaryIO:
    """A committed blob for reading: the file itself, unbuffered, where the store's blobs are
    files (:class:`BlobFiles`, the local store), else through ``open_blob``."""
    if isinstance(content, BlobFiles):
        return open(content.blob_path(digest), "rb", buffering=0)
    return content.open_blob(digest)


class _LimitedReader:
    """Reads at most ``limit`` bytes of ``inner`` (the part of an ingest already written)."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self._inner = inner
        self._left = limit

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._inner.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._inner.close()


def _exception(future: asyncio.Future[Any]) -> BaseException:
    error = future.exception()
    assert error is not None
    return error


def _apply(layer: HashingReader, target: Path, *, overlay: bool, digest: str) -> None:
    """apply_layer, its complaints about the layer's bytes naming the layer."""
    try:
        apply_layer(layer, target, overlay_whiteouts=overlay)
    except InvalidArgument as exc:
        raise InvalidArgument(f"layer {digest}: {exc}") from None


def _check_diff_id(plan: LayerPlan, actual: str) -> None:
    if actual != plan.diff_id:
        raise DigestMismatch(
            expected=plan.diff_id, actual=actual, what=f"uncompressed layer {plan.desc.digest}"
        )


def _remove_quietly(snapshotter: Snapshotter, key: str) -> None:
    with contextlib.suppress(NotFound):
        snapshotter.remove(key)


def _abort_quietly(writer: ContentWriter) -> None:
    with contextlib.suppress(Exception):
        writer.abort()


def _close_quietly(writer: ContentWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


async def _aclose(it: AsyncIterator[bytes]) -> None:
    closer: Callable[[], Awaitable[Any]] | None = getattr(it, "aclose", None)
    if closer is not None:
        with contextlib.suppress(Exception):
            await closer()
