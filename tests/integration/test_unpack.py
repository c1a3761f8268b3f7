"""The unpacker against a real content store and both real snapshotters: streaming a layer into
a snapshot, resuming an interrupted download from the bytes already ingested, refusing bytes
whose digest is wrong, and linking parallel-unpacked layers into one chain."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runtime.content.interfaces import Store
from runtime.content.local import LocalStore
from runtime.content.memory import MemoryStore
from runtime.errors import DeadlineExceeded, DigestMismatch, NotFound
from runtime.images.manifest import chain_ids
from runtime.images.progress import discard
from runtime.images.unpack import LayerPlan, Unpacker
from runtime.mount import mount_all, unmount
from runtime.ocispec import OCI_LAYER_GZIP, Descriptor
from runtime.snapshots.interfaces import Snapshotter
from runtime.snapshots.native import NativeSnapshotter
from runtime.snapshots.overlay import OverlaySnapshotter
from tests.support.layers import TarBuilder, compress

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="snapshots need root"),
]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ServedBlobs:
    """A blob source serving fixed bytes, recording which offsets were asked for."""

    def __init__(self, blobs: dict[str, bytes], *, chunk: int = 4096) -> None:
        self.blobs = blobs
        self.chunk = chunk
        self.offsets: list[tuple[str, int]] = []

    def fetch(self, desc: Descriptor, *, offset: int) -> AsyncIterator[bytes]:
        self.offsets.append((desc.digest, offset))
        data = self.blobs[desc.digest]

        async def gen() -> AsyncIterator[bytes]:
            for start in range(offset, len(data), self.chunk):
                yield data[start : start + self.chunk]

        return gen()


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    builder = TarBuilder()
    for path, content in files.items():
        builder.file(path, content)
    tar = builder.build()
    return compress(tar, "gzip"), _digest(tar)


def _plans(layers: list[tuple[bytes, str]]) -> list[LayerPlan]:
    chains = chain_ids([diff for _, diff in layers])
    return [
        LayerPlan(
            desc=Descriptor(media_type=OCI_LAYER_GZIP, digest=_digest(blob), size=len(blob)),
            diff_id=diff,
            chain_id=chains[i],
            parent_chain_id=chains[i - 1] if i else "",
        )
        for i, (blob, diff) in enumerate(layers)
    ]


@pytest.fixture(params=["overlay", "native"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Snapshotter]:
    cls = OverlaySnapshotter if request.param == "overlay" else NativeSnapshotter
    sn = cls(tmp_path / "snapshots")
    yield sn
    sn.close()


@pytest.fixture(params=["local", "memory"])
def content(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The image layer depends on the content store's roles: it runs on either store."""
    if request.param == "local":
        return LocalStore(tmp_path / "content")
    return MemoryStore()


def _unpacker(content: Store, sn: Snapshotter) -> Unpacker:
    return Unpacker(content=content, snapshotter=sn, max_concurrent=3, progress_timeout=30)


def _read(sn: Snapshotter, chain_id: str, path: str, where: Path) -> bytes:
    """Read ``path`` from the committed chain ``chain_id`` through a mounted view."""
    key = f"view-{chain_id[7:19]}"
    target = where / key
    target.mkdir(exist_ok=True)
    mounts = sn.view(key, chain_id)
    mount_all(mounts, target)
    try:
        return (target / path).read_bytes()
    finally:
        unmount(target)
        sn.remove(key)


def test_layers_unpack_into_one_chain(
    snapshotter: Snapshotter, content: Store, tmp_path: Path
) -> None:
    layers = [
        _layer({"/etc/one": b"1", "/etc/shared": b"first"}),
        _layer({"/etc/two": b"2", "/etc/shared": b"second"}),
        _layer({"/etc/three": b"3"}),
    ]
    source = ServedBlobs({_digest(blob): blob for blob, _ in layers})
    plans = _plans(layers)
    asyncio.run(_unpacker(content, snapshotter).ensure(plans, source, discard, "test"))

    top = plans[-1].chain_id
    assert snapshotter.stat(top).parent == plans[1].chain_id
    assert _read(snapshotter, top, "etc/shared", tmp_path) == b"second"
    assert _read(snapshotter, top, "etc/one", tmp_path) == b"1"
    # every compressed blob was kept, verified, in the content store
    assert {content.info(p.desc.digest).size for p in plans} == {p.desc.size for p in plans}
    # a second ensure finds the chain and fetches nothing
    source.offsets.clear()
    asyncio.run(_unpacker(content, snapshotter).ensure(plans, source, discard, "test"))
    assert source.offsets == []


def test_interrupted_download_resumes_from_the_ingest(
    snapshotter: Snapshotter, content: Store, tmp_path: Path
) -> None:
    blob, diff = _layer({"/data/big": os.urandom(300_000)})
    plan = _plans([(blob, diff)])[0]
    half = len(blob) // 2
    # an earlier pull got half of the blob before it died
    writer = content.writer(
        f"pull-{plan.desc.digest}", expected_digest=plan.desc.digest, expected_size=len(blob)
    )
    writer.write(blob[:half])
    writer.close()

    source = ServedBlobs({plan.desc.digest: blob})
    asyncio.run(_unpacker(content, snapshotter).ensure([plan], source, discard, "test"))
    assert source.offsets == [(plan.desc.digest, half)]
    assert content.exists(plan.desc.digest)
    assert len(_read(snapshotter, plan.chain_id, "data/big", tmp_path)) == 300_000


def test_wrong_bytes_fail_with_the_digest_and_leave_nothing(
    snapshotter: Snapshotter, content: Store, tmp_path: Path
) -> None:
    blob, diff = _layer({"/etc/x": b"x" * 1000})
    plan = _plans([(blob, diff)])[0]
    corrupt = bytes(b ^ 0xFF for b in blob)
    source = ServedBlobs({plan.desc.digest: corrupt})
    with pytest.raises(DigestMismatch) as info:
        asyncio.run(_unpacker(content, snapshotter).ensure([plan], source, discard, "test"))
    assert plan.desc.digest in str(info.value)
    assert not content.exists(plan.desc.digest)
    assert content.list_ingests() == []
    with pytest.raises(NotFound):
        snapshotter.stat(plan.chain_id)
    assert list(snapshotter.walk()) == []


class StallingBlobs(ServedBlobs):
    """Serves the first chunk of each blob, then never another byte."""

    def fetch(self, desc: Descriptor, *, offset: int) -> AsyncIterator[bytes]:
        data = self.blobs[desc.digest]

        async def gen() -> AsyncIterator[bytes]:
            yield data[offset : offset + self.chunk]
            await asyncio.Event().wait()
            yield b""  # pragma: no cover - never reached

        return gen()


def test_a_download_that_stops_moving_fails_after_the_progress_timeout(
    snapshotter: Snapshotter, tmp_path: Path
) -> None:
    content = LocalStore(tmp_path / "content")
    blob, diff = _layer({"/data/big": os.urandom(100_000)})
    plan = _plans([(blob, diff)])[0]
    unpacker = Unpacker(
        content=content, snapshotter=snapshotter, max_concurrent=1, progress_timeout=0.3
    )
    with pytest.raises(DeadlineExceeded, match="made no progress") as info:
        asyncio.run(unpacker.ensure([plan], StallingBlobs({plan.desc.digest: blob}), discard, "t"))
    assert plan.desc.digest in str(info.value)
    # the bytes that came are kept for the next attempt to resume from
    assert [i.offset for i in content.list_ingests()] == [4096]
    assert list(snapshotter.walk()) == []
