"""The image layer on the content store's role interfaces: pull, unpack, push, OCI layout
import and garbage collection behave the same on the on-disk store and on the in-memory one."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.content.interfaces import Store
from runtime.content.local import LocalStore
from runtime.content.memory import MemoryStore
from runtime.distribution.client import RegistryClient
from runtime.errors import DigestMismatch
from runtime.images import archive
from runtime.images.gc import Collector
from runtime.images.pull import Puller
from runtime.images.service import ImageService
from runtime.images.store import ImageStore
from runtime.images.unpack import Unpacker
from runtime.metadata.db import Database
from runtime.ocispec import Platform
from runtime.snapshots.native import NativeSnapshotter
from tests.support.fake_registry import FakeRegistry
from tests.support.images import ImageBuilder
from tests.support.layers import TarBuilder
from tests.support.pods import image_record


@pytest.fixture(params=["local", "memory"])
def content(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "content")
    return MemoryStore()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "metadata.db")
    database.open()
    yield database
    database.close()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layout(root: Path, blobs: list[bytes], *, corrupt: bool = False) -> Path:
    (root / "blobs" / "sha256").mkdir(parents=True)
    for blob in blobs:
        name = _digest(blob).split(":")[1]
        (root / "blobs" / "sha256" / name).write_bytes(b"not it" if corrupt else blob)
    manifest = blobs[0]
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _digest(manifest),
                "size": len(manifest),
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def test_a_layout_is_imported_blob_by_blob(content: Store, tmp_path: Path) -> None:
    blobs = [b'{"schemaVersion": 2}', b"config", b"layer"]
    index = archive.read_layout(content, _layout(tmp_path / "layout", blobs))
    assert len(index["manifests"]) == 1
    for blob in blobs:
        assert content.read_blob(_digest(blob)) == blob


def test_a_damaged_layout_names_the_digest_and_leaves_nothing(
    content: Store, tmp_path: Path
) -> None:
    blobs = [b'{"schemaVersion": 2}']
    with pytest.raises(DigestMismatch, match=_digest(blobs[0])):
        archive.read_layout(content, _layout(tmp_path / "layout", blobs, corrupt=True))
    assert list(content.walk()) == []
    assert content.list_ingests() == []


def test_collection_keeps_what_images_reference(
    content: Store, db: Database, tmp_path: Path
) -> None:
    kept, dropped = b"kept blob", b"dropped blob"
    for blob in (kept, dropped):
        with content.writer(f"w-{_digest(blob)}", expected_digest=_digest(blob)) as w:
            w.write(blob)
            w.commit()
    images = ImageStore(db)
    record = image_record("example.test/app:1", layer="app")
    images.put(dataclasses.replace(record, blobs=(_digest(kept),)), tags=["a:1"], digests=[])
    sn = NativeSnapshotter(tmp_path / "snapshots")
    try:
        result = Collector(content=content, snapshotter=sn, images=images).collect()
    finally:
        sn.close()
    assert result.blobs_removed == 1
    assert content.exists(_digest(kept)) and not content.exists(_digest(dropped))


def _image_service(
    content: Store, db: Database, root: Path, registry: FakeRegistry
) -> tuple[ImageService, NativeSnapshotter]:
    """The image layer as the daemon builds it, on ``content``, with the network replaced by
    ``registry`` behind httpx.MockTransport."""
    images = ImageStore(db)
    sn = NativeSnapshotter(root / "snapshots")
    unpacker = Unpacker(content=content, snapshotter=sn, max_concurrent=3, progress_timeout=30)
    puller = Puller(
        content=content,
        images=images,
        unpacker=unpacker,
        platform=Platform(os="linux", architecture="amd64"),
        progress_timeout=30,
    )

    def client_factory(creds: object, host: object) -> RegistryClient:
        return RegistryClient(None, user_agent="t", transport=httpx.MockTransport(registry))

    service = ImageService(
        content=content,
        snapshotter=sn,
        images=images,
        puller=puller,
        collector=Collector(content=content, snapshotter=sn, images=images),
        client_factory=client_factory,
        store_dirs=(root / "content", root / "snapshots"),
    )
    return service, sn


async def test_pull_push_remove_and_collect(content: Store, db: Database, tmp_path: Path) -> None:
    """The whole life of an image on either store: pulled (documents and layers ingested,
    layers unpacked in a chain), pushed back from the store, removed and collected."""
    base = TarBuilder().directory("etc").file("etc/hello", "hello\n").build()
    top = TarBuilder().directory("etc").file("etc/top", "top\n").whiteout("etc/hello").build()
    built = ImageBuilder().add_layer(base).add_layer(top, compression="zstd").build()
    registry = FakeRegistry()
    for blob in built.blobs():
        registry.blobs[blob.digest] = blob.read()
    registry.add_manifest("v1", built.manifest.media_type, built.manifest.read())
    service, sn = _image_service(content, db, tmp_path, registry)
    try:
        record = await service.pull("r.example/app:v1")
        assert record.manifest_digest == built.digest
        assert record.id == built.config.digest
        for blob in [built.manifest, *built.blobs()]:
            assert content.read_blob(blob.digest) == blob.read()
        (view,) = await asyncio.to_thread(sn.view, "look", record.chain_id)
        tree = Path(view.source)
        assert (tree / "etc" / "top").read_text() == "top\n"
        assert not (tree / "etc" / "hello").exists()  # the upper layer's whiteout
        sn.remove("look")

        pushed = await service.push("r.example/app:v1", target="r.example/app:v2")
        assert pushed == built.digest
        assert registry.manifests["v2"][1] == built.manifest.read()
        assert all(registry.blobs[b.digest] == b.read() for b in built.blobs())

        await service.remove("r.example/app:v1")
        await service.collect()
        assert service.find("r.example/app:v1") is None
        assert list(content.walk()) == []
        assert list(sn.walk()) == []
    finally:
        sn.close()
