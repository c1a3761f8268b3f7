"""The image layer on the content store's role interfaces: OCI layout import and garbage
collection behave the same on the on-disk store and on the in-memory one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.content.interfaces import Store
from runtime.content.local import LocalStore
from runtime.content.memory import MemoryStore
from runtime.errors import DigestMismatch
from runtime.images import archive
from runtime.images.gc import Collector
from runtime.images.store import ImageStore
from runtime.metadata.db import Database
from runtime.snapshots.native import NativeSnapshotter
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
