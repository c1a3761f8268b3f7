"""Pushing a local image: its layers and config, then its manifest under the target tag.

Only what the content store holds can be pushed; an image whose compressed layers were
collected (none are, today) would have to be pulled again first.
"""

from __future__ import annotations

import asyncio
from functools import partial

from runtime.content.interfaces import Provider
from runtime.distribution.client import RegistryClient
from runtime.distribution.reference import Reference
from runtime.errors import FailedPrecondition
from runtime.images import manifest as manifests
from runtime.images.progress import Phase, Progress, ProgressSink
from runtime.images.store import ImageRecord
from runtime.ocispec import Descriptor


async def push_image(
    *,
    content: Provider,
    client: RegistryClient,
    record: ImageRecord,
    target: Reference,
    progress: ProgressSink,
) -> str:
    """Push ``record`` to ``target``; returns the pushed manifest's digest."""
    ref = str(target)
    if not await asyncio.to_thread(content.exists, record.manifest_digest):
        raise FailedPrecondition(
            f"manifest {record.manifest_digest} of image {record.id} is not in the content "
            "store; pull the image again before pushing it"
        )
    data = await asyncio.to_thread(content.read_blob, record.manifest_digest)
    parsed = manifests.parse_any(record.manifest_media_type, data, ref=ref)
    if not isinstance(parsed, manifests.Manifest):
        raise FailedPrecondition(f"image {record.id} has no single-platform manifest to push")
    blobs: list[Descriptor] = [*parsed.layers, parsed.config]
    for desc in blobs:
        if not await asyncio.to_thread(content.exists, desc.digest):
            raise FailedPrecondition(
                f"blob {desc.digest} of image {record.id} is not in the content store; "
                "pull the image again before pushing it"
            )

    async def push_one(desc: Descriptor) -> None:
        progress(Progress(ref, Phase.UPLOADING, desc.digest, 0, desc.size))
        await client.push_blob(target, desc, partial(content.open_blob, desc.digest))
        progress(Progress(ref, Phase.DONE, desc.digest, desc.size, desc.size))

    await asyncio.gather(*(push_one(d) for d in blobs))
    tag_or_digest = target.tag or target.digest or "latest"
    digest = await client.push_manifest(
        target, record.manifest_media_type, data, tag_or_digest=tag_or_digest
    )
    progress(Progress(ref, Phase.DONE))
    return digest
