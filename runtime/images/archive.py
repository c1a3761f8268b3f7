"""Importing images from an OCI image layout: a directory, or a tar archive of one.

Every blob is copied into the content store through a verifying writer (its file name is its
digest), so a damaged archive fails with the digest named and leaves nothing half-written. The
archive is read as a stream, once, in whatever order its members come.

Names: the ``io.containerd.image.name`` annotation of an index entry, else its
``org.opencontainers.image.ref.name`` when that is a full reference, else that tag under the
caller's ``name``; an entry with none of these is imported without a name (listed by id).
"""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runtime.content.interfaces import BlobStore
from runtime.distribution.reference import parse_reference
from runtime.errors import InvalidArgument
from runtime.ocispec import ANNOTATION_REF_NAME, Descriptor, validate_digest

ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LayoutEntry:
    """One image the layout's index.json names, with the name to record it under."""

    target: Descriptor
    name: str


def _digest_from_member(member_name: str) -> str | None:
    parts = member_name.lstrip("./").split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        digest = f"{parts[1]}:{parts[2]}"
        with contextlib.suppress(InvalidArgument):
            return validate_digest(digest)
    return None


def _ingest(content: BlobStore, digest: str, source: IO[bytes], size: int | None) -> None:
    if content.exists(digest):
        return
    with content.writer(f"import-{digest}", expected_digest=digest, expected_size=size) as writer:
        if writer.offset:
            writer.abort()
            return _ingest(content, digest, source, size)
        while chunk := source.read(_CHUNK):
            writer.write(chunk)
        writer.commit()


def read_layout(content: BlobStore, path: Path) -> dict[str, Any]:
    """Copy every blob of the layout at ``path`` into ``content``; return its index.json."""
    if path.is_dir():
        return _read_layout_dir(content, path)
    if path.is_file():
        return _read_layout_tar(content, path)
    raise InvalidArgument(f"{path} does not exist: give an OCI layout directory or archive")


def _read_layout_dir(content: BlobStore, path: Path) -> dict[str, Any]:
    index_path = path / "index.json"
    if not index_path.is_file():
        raise InvalidArgument(f"{path} is not an OCI image layout: it has no index.json")
    blobs = path / "blobs"
    for algorithm_dir in sorted(blobs.iterdir()) if blobs.is_dir() else ():
        for blob in sorted(algorithm_dir.iterdir()):
            digest = _digest_from_member(f"blobs/{algorithm_dir.name}/{blob.name}")
            if digest is None:
                continue
            with open(blob, "rb") as handle:
                _ingest(content, digest, handle, blob.stat().st_size)
    return _parse_index(index_path.read_bytes(), str(index_path))


def _read_layout_tar(content: BlobStore, path: Path) -> dict[str, Any]:
    index: bytes | None = None
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                name = member.name.lstrip("./")
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                if name == "index.json":
                    index = handle.read()
                    continue
                digest = _digest_from_member(name)
                if digest is not None:
                    _ingest(content, digest, handle, member.size)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"{path} is not a readable tar archive: {exc}") from exc
    if index is None:
        raise InvalidArgument(f"{path} is not an OCI image archive: it has no index.json")
    return _parse_index(index, f"{path}:index.json")


def _parse_index(data: bytes, where: str) -> dict[str, Any]:
    try:
        index = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArgument(f"{where} has no 'manifests' list")
    return index


def entries(index: dict[str, Any], *, name: str) -> Iterator[LayoutEntry]:
    """The images an OCI layout's index names, with the name each is to be recorded under."""
    for raw in index["manifests"]:
        desc = Descriptor.from_json(raw)
        yield LayoutEntry(target=desc, name=_entry_name(desc, base=name))


def _entry_name(desc: Descriptor, *, base: str) -> str:
    explicit = desc.annotations.get(ANNOTATION_CONTAINERD_NAME, "")
    if explicit:
        return str(parse_reference(explicit))
    ref_name = desc.annotations.get(ANNOTATION_REF_NAME, "")
    if ref_name and ("/" in ref_name or (ref_name.count(":") == 1 and "." in ref_name)):
        with contextlib.suppress(InvalidArgument):
            return str(parse_reference(ref_name))
    if base:
        ref = parse_reference(base)
        if ref_name:
            return f"{ref.name}:{ref_name}"
        return str(ref)
    return ""
