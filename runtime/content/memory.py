"""An in-memory content store: the test double other packages' unit tests use.

It follows the same contract as :class:`runtime.content.local.LocalStore` (the conformance
suite runs against both): resumable ingests, one writer per ref, verified commits.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO

from runtime.content.interfaces import BlobInfo, IngestStatus
from runtime.errors import (
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from runtime.ocispec import validate_digest


@dataclass(slots=True)
class _Ingest:
    ref: str
    expected_digest: str | None
    expected_size: int | None
    data: bytearray = field(default_factory=bytearray)
    updated_at: float = field(default_factory=time.time)
    locked: bool = False


class MemoryStore:
    """A thread-safe :class:`runtime.content.interfaces.Store` keeping everything in dicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, tuple[bytes, float]] = {}
        self._ingests: dict[str, _Ingest] = {}

    def info(self, digest: str) -> BlobInfo:
        validate_digest(digest)
        with self._lock:
            try:
                data, created = self._blobs[digest]
            except KeyError:
                raise NotFound(f"content {digest} not found") from None
        return BlobInfo(digest=digest, size=len(data), created_at=created)

    def exists(self, digest: str) -> bool:
        with self._lock:
            return digest in self._blobs

    def read_blob(self, digest: str) -> bytes:
        validate_digest(digest)
        with self._lock:
            try:
                return self._blobs[digest][0]
            except KeyError:
                raise NotFound(f"content {digest} not found") from None

    def open_blob(self, digest: str) -> BinaryIO:
        return io.BytesIO(self.read_blob(digest))

    def walk(self) -> Iterator[BlobInfo]:
        with self._lock:
            items = list(self._blobs.items())
        for digest, (data, created) in items:
            yield BlobInfo(digest=digest, size=len(data), created_at=created)

    def delete(self, digest: str) -> None:
        validate_digest(digest)
        with self._lock:
            if self._blobs.pop(digest, None) is None:
                raise NotFound(f"content {digest} not found")

    def usage(self) -> tuple[int, int]:
        with self._lock:
            return sum(len(d) for d, _ in self._blobs.values()), len(self._blobs)

    def writer(
        self,
        ref: str,
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
    ) -> MemoryWriter:
        if not ref:
            raise InvalidArgument("an ingest ref must not be empty")
        if expected_digest is not None:
            validate_digest(expected_digest)
        if expected_size is not None and expected_size < 0:
            raise InvalidArgument(f"expected size {expected_size} is negative")
        with self._lock:
            ingest = self._ingests.get(ref)
            if ingest is not None and ingest.locked:
                raise Unavailable(f"ingest {ref} is locked")
            if (
                ingest is None
                or ingest.expected_digest != expected_digest
                or ingest.expected_size != expected_size
                or (expected_size is not None and len(ingest.data) > expected_size)
            ):
                ingest = _Ingest(ref, expected_digest, expected_size)
                self._ingests[ref] = ingest
            ingest.locked = True
        return MemoryWriter(self, ingest)

    def list_ingests(self) -> list[IngestStatus]:
        with self._lock:
            return [
                IngestStatus(
                    ref=i.ref,
                    offset=len(i.data),
                    expected_digest=i.expected_digest,
                    expected_size=i.expected_size,
                    updated_at=i.updated_at,
                )
                for i in self._ingests.values()
            ]

    def abort(self, ref: str) -> None:
        with self._lock:
            ingest = self._ingests.get(ref)
            if ingest is None:
                raise NotFound(f"ingest {ref} not found")
            if ingest.locked:
                raise Unavailable(f"ingest {ref} is locked")
            del self._ingests[ref]

    # Called by MemoryWriter.
    def _finish(self, ingest: _Ingest, *, remove: bool, blob: tuple[str, bytes] | None) -> float:
        with self._lock:
            ingest.locked = False
            if remove and self._ingests.get(ingest.ref) is ingest:
                del self._ingests[ingest.ref]
            if blob is None:
                return 0.0
            digest, data = blob
            if digest not in self._blobs:
                self._blobs[digest] = (data, time.time())
            return self._blobs[digest][1]


class MemoryWriter:
    """The :class:`runtime.content.interfaces.ContentWriter` of :class:`MemoryStore`."""

    def __init__(self, store: MemoryStore, ingest: _Ingest) -> None:
        self._store = store
        self._ingest = ingest
        self._hasher = hashlib.new((ingest.expected_digest or "sha256:").split(":", 1)[0])
        self._hasher.update(ingest.data)
        self._open = True

    @property
    def ref(self) -> str:
        return self._ingest.ref

    @property
    def offset(self) -> int:
        return len(self._ingest.data)

    def _check_open(self) -> None:
        if not self._open:
            raise FailedPrecondition(f"writer for ingest {self._ingest.ref} is closed")

    def write(self, data: bytes) -> None:
        self._check_open()
        ingest = self._ingest
        if ingest.expected_size is not None and len(ingest.data) + len(data) > ingest.expected_size:
            got = len(ingest.data) + len(data)
            self.abort()
            raise DigestMismatch(
                what=f"blob {ingest.expected_digest or ingest.ref}",
                expected=f"{ingest.expected_size} bytes",
                actual=f"at least {got} bytes",
            )
        ingest.data += data
        ingest.updated_at = time.time()
        self._hasher.update(data)

    def digest(self) -> str:
        return f"{self._hasher.name}:{self._hasher.hexdigest()}"

    def open_written(self) -> BinaryIO:
        """The bytes this ingest holds so far (:class:`ReplayableWriter`)."""
        return io.BytesIO(bytes(self._ingest.data))

    def commit(
        self, *, expected_digest: str | None = None, expected_size: int | None = None
    ) -> BlobInfo:
        self._check_open()
        ingest = self._ingest
        want_digest = expected_digest or ingest.expected_digest
        want_size = ingest.expected_size if expected_size is None else expected_size
        actual = self.digest()
        size = len(ingest.data)
        if want_size is not None and size != want_size:
            self.abort()
            raise DigestMismatch(
                what=f"blob {want_digest or actual}",
                expected=f"{want_size} bytes",
                actual=f"{size} bytes",
            )
        if want_digest is not None and want_digest != actual:
            self.abort()
            raise DigestMismatch(what="blob", expected=want_digest, actual=actual)
        self._open = False
        created = self._store._finish(ingest, remove=True, blob=(actual, bytes(ingest.data)))
        return BlobInfo(digest=actual, size=size, created_at=created)

    def abort(self) -> None:
        if self._open:
            self._open = False
            self._store._finish(self._ingest, remove=True, blob=None)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._store._finish(self._ingest, remove=False, blob=None)

    def __enter__(self) -> MemoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
