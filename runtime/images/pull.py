"""Pulling an image: resolve the name, fetch the manifest (choosing this node's platform from an
index), the config and the layers, unpack into snapshots and record the image.

Small documents (index, manifest, config) are fetched whole and verified; layers stream through
``Unpacker``. The image record is written last, in one transaction, so an interrupted pull never
lists an image: what it left (partial ingests, unpacked snapshots) is either reused by the next
pull or collected as garbage.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from runtime import faults
from runtime.content.interfaces import BlobStore
from runtime.distribution.client import RegistryClient
from runtime.distribution.reference import Reference
from runtime.errors import DeadlineExceeded, DigestMismatch, FailedPrecondition
from runtime.images import manifest as manifests
from runtime.images.platforms import select_manifest
from runtime.images.progress import Phase, Progress, ProgressSink
from runtime.images.store import ImageRecord, ImageStore
from runtime.images.unpack import LayerPlan, Unpacker
from runtime.ocispec import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Platform


@dataclass(frozen=True, slots=True)
class ImageDocuments:
    """What an image's metadata resolved to: the platform manifest and its parsed config."""

    target: Descriptor
    manifest_desc: Descriptor
    manifest: manifests.Manifest
    config_desc: Descriptor
    config_bytes: bytes
    config: manifests.ImageConfig
    blobs: tuple[str, ...]


class RegistrySource:
    """A ``BlobSource`` reading layers of one repository from a registry."""

    def __init__(self, client: RegistryClient, ref: Reference) -> None:
        self._client = client
        self._ref = ref

    def fetch(self, desc: Descriptor, *, offset: int) -> AsyncIterator[bytes]:
        return self._client.fetch_blob(self._ref, desc, offset=offset)


async def _within(deadline: float, what: str, aw):  # type: ignore[no-untyped-def]
    try:
        return await asyncio.wait_for(aw, timeout=deadline)
    except TimeoutError:
        raise DeadlineExceeded(f"{what} made no progress for {deadline:.0f}s") from None


_MAX_DOCUMENT = 16 * 1024 * 1024


async def _read_blob(client: RegistryClient, ref: Reference, desc: Descriptor) -> bytes:
    """A small blob (an image config), read whole and verified against its descriptor."""
    if desc.size > _MAX_DOCUMENT:
        raise FailedPrecondition(
            f"{desc.digest} of {ref} is {desc.size} bytes; image configs over "
            f"{_MAX_DOCUMENT} bytes are refused"
        )
    parts = [chunk async for chunk in client.fetch_blob(ref, desc)]
    data = b"".join(parts)
    actual = manifests.compute_digest(data)
    if actual != desc.digest or len(data) != desc.size:
        raise DigestMismatch(expected=desc.digest, actual=actual, what=f"blob of {ref}")
    return data


class Puller:
    """Pulls images from registries into the content store, snapshots and image records."""

    def __init__(
        self,
        *,
        content: BlobStore,
        images: ImageStore,
        unpacker: Unpacker,
        platform: Platform,
        progress_timeout: float,
    ) -> None:
        self._content = content
        self._images = images
        self._unpacker = unpacker
        self._platform = platform
        self._timeout = progress_timeout
        self._doc_flights: dict[str, asyncio.Future[bytes]] = {}

    async def _store_document(self, desc: Descriptor, data: bytes) -> None:
        def write() -> None:
            if self._content.exists(desc.digest):
                return
            with self._content.writer(
                f"doc-{desc.digest}", expected_digest=desc.digest, expected_size=desc.size
            ) as writer:
                if writer.offset:
                    writer.abort()
                    return write()
                writer.write(data)
                writer.commit()

        await asyncio.to_thread(write)

    async def _document(self, client: RegistryClient, ref: Reference, desc: Descriptor) -> bytes:
        if await asyncio.to_thread(self._content.exists, desc.digest):
            return await asyncio.to_thread(self._content.read_blob, desc.digest)
        # Concurrent pulls of one image fetch and store each document once.
        flight = self._doc_flights.get(desc.digest)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch_document(client, ref, desc))
            self._doc_flights[desc.digest] = flight
            flight.add_done_callback(lambda _f: self._doc_flights.pop(desc.digest, None))
        return await asyncio.shield(flight)

    async def _fetch_document(
        self, client: RegistryClient, ref: Reference, desc: Descriptor
    ) -> bytes:
        if desc.media_type in INDEX_TYPES or desc.media_type in MANIFEST_TYPES:
            fetched = client.fetch_manifest(ref, desc)
        else:
            fetched = _read_blob(client, ref, desc)
        data = await _within(self._timeout, f"fetching {desc.digest} of {ref}", fetched)
        await self._store_document(desc, data)
        return data

    async def documents(
        self,
        target: Descriptor,
        fetch: Callable[[Descriptor], Awaitable[bytes]],
        *,
        ref: str,
    ) -> ImageDocuments:
        """Read the documents ``target`` leads to (choosing this node's platform from an
        index) with ``fetch``, which returns verified bytes."""
        blobs = [target.digest]
        data = await fetch(target)
        parsed = manifests.parse_any(target.media_type, data, ref=ref)
        manifest_desc = target
        if isinstance(parsed, manifests.Index):
            manifest_desc = select_manifest(parsed, self._platform, ref=ref)
            blobs.append(manifest_desc.digest)
            data = await fetch(manifest_desc)
            parsed = manifests.parse_any(manifest_desc.media_type, data, ref=ref)
            if not isinstance(parsed, manifests.Manifest):
                raise FailedPrecondition(
                    f"index of {ref} points at {manifest_desc.digest}, which is another index "
                    "rather than an image manifest; nested indexes are not supported"
                )
        config_bytes = await fetch(parsed.config)
        config = manifests.parse_image_config(config_bytes)
        blobs.append(parsed.config.digest)
        blobs.extend(layer.digest for layer in parsed.layers)
        return ImageDocuments(
            target=target,
            manifest_desc=manifest_desc,
            manifest=parsed,
            config_desc=parsed.config,
            config_bytes=config_bytes,
            config=config,
            blobs=tuple(dict.fromkeys(blobs)),
        )

    async def pull(
        self, client: RegistryClient, ref: Reference, progress: ProgressSink
    ) -> ImageRecord:
        progress(Progress(str(ref), Phase.RESOLVING))
        _name, target = await _within(self._timeout, f"resolving {ref}", client.resolve(ref))
        present = self._already_recorded(ref, target)
        if present is not None and await self.is_whole(present):
            progress(Progress(str(ref), Phase.DONE))
            return present
        docs = await self.documents(
            target, lambda desc: self._document(client, ref, desc), ref=str(ref)
        )
        await self.unpack(docs, RegistrySource(client, ref), progress, str(ref))
        faults.point("image.pull.unpacked")
        tags = [f"{ref.name}:{ref.tag}"] if ref.tag else []
        digests = [f"{ref.name}@{docs.target.digest}"]
        record = await asyncio.to_thread(self.record, docs, tags=tags, digests=digests)
        faults.point("image.pull.recorded")
        progress(Progress(str(ref), Phase.DONE))
        return record

    async def is_whole(self, record: ImageRecord) -> bool:
        """Whether ``record``'s snapshots are all there. A record is written only after its
        snapshots are committed, but a damaged snapshot database moved aside at start
        (:mod:`runtime.metadata.salvage`) can lose them while the record survives: such an
        image is pulled (unpacked) again rather than answered as present."""
        return await asyncio.to_thread(self._unpacker.has_snapshot, record.chain_id)

    def _already_recorded(self, ref: Reference, target: Descriptor) -> ImageRecord | None:
        """The image ``ref`` already names when its tag still resolves to what it named at the
        last pull: nothing to fetch, unpack or write (kubelet's ``Always`` policy re-pulls at
        every container start). The name was resolved against the registry just now, so a
        moved tag takes the full path. A record is written only after its snapshots are
        committed, and they stay while it names them."""
        if not ref.tag:
            return None
        record = self._images.lookup(
            f"{ref.name}:{ref.tag}", normalized_name=f"{ref.name}:{ref.tag}"
        )
        if record is None or f"{ref.name}@{target.digest}" not in record.repo_digests:
            return None
        return record

    async def unpack(
        self, docs: ImageDocuments, source: object, progress: ProgressSink, ref: str
    ) -> None:
        layers = docs.manifest.layers
        diff_ids = docs.config.diff_ids
        if len(layers) != len(diff_ids):
            raise FailedPrecondition(
                f"image {ref} has {len(layers)} layers but its config lists {len(diff_ids)} "
                "diff ids"
            )
        chains = manifests.chain_ids(diff_ids)
        plans = [
            LayerPlan(
                desc=layer,
                diff_id=diff_ids[i],
                chain_id=chains[i],
                parent_chain_id=chains[i - 1] if i else "",
            )
            for i, layer in enumerate(layers)
        ]
        await self._unpacker.ensure(plans, source, progress, ref)  # type: ignore[arg-type]

    def record(self, docs: ImageDocuments, *, tags: list[str], digests: list[str]) -> ImageRecord:
        chains = manifests.chain_ids(docs.config.diff_ids)
        size = docs.manifest_desc.size + docs.config_desc.size
        size += sum(layer.size for layer in docs.manifest.layers)
        record = ImageRecord(
            id=docs.config_desc.digest,
            manifest_digest=docs.manifest_desc.digest,
            manifest_media_type=docs.manifest_desc.media_type,
            size=size,
            chain_id=chains[-1] if chains else "",
            config_json=docs.config_bytes.decode("utf-8", "replace"),
            created_at=time.time(),
            blobs=docs.blobs,
            chain_ids=tuple(chains),
            config=json.loads(docs.config_bytes),
        )
        return self._images.put(record, tags=tags, digests=digests)
