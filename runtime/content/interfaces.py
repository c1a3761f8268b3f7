"""The content store's interfaces, split by role (containerd's core/content shape).

Words used throughout:

digest
    ``<algorithm>:<hex>`` of a blob's bytes (``sha256:…`` or ``sha512:…``, see
    :func:`runtime.ocispec.validate_digest`). A blob is stored under, and only under, its digest.
blob
    Immutable bytes in the store. Once committed a blob never changes; it can only be deleted.
ingest ref
    A caller-chosen name for one in-progress write (for example ``"layer-sha256:ab…"``). The
    ref is what makes a write resumable: opening a writer on a ref that already has data
    continues after the bytes already there. Only one writer may hold a ref at a time.
commit
    The end of an ingest: the written bytes are checked against the expected size and digest,
    made durable, and atomically become the blob. A failed check removes the ingest, so nothing
    half-written or wrong is ever visible as a blob. Committing content that is already stored
    succeeds and discards the duplicate ingest.

Callers ask for the narrowest role they need: a layer unpacker needs a :class:`Provider`, a
puller an :class:`Ingester`, the garbage collector a :class:`Manager`.

All methods block (file I/O, hashing); async callers run them with ``asyncio.to_thread``.
Implementations are thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A committed blob: its digest, size in bytes and when it was committed (unix seconds)."""

    digest: str
    size: int
    created_at: float


@dataclass(frozen=True, slots=True)
class IngestStatus:
    """An in-progress write: how many bytes it holds and what it was promised to become.

    ``expected_digest``/``expected_size`` are None when the writer was opened without them.
    ``updated_at`` is when bytes were last written (unix seconds).
    """

    ref: str
    offset: int
    expected_digest: str | None
    expected_size: int | None
    updated_at: float


@runtime_checkable
class ContentWriter(Protocol):
    """One open ingest. ``offset`` bytes are already written (more than 0 when resumed).

    Leaving the ``with`` block without commit (normally or by an exception) closes the writer
    and keeps the partial data for a later writer on the same ref; :meth:`abort` removes it.
    """

    @property
    def ref(self) -> str: ...

    @property
    def offset(self) -> int: ...

    def write(self, data: bytes) -> None:
        """Append ``data``. Writing past the expected size raises DigestMismatch and aborts."""

    def digest(self) -> str:
        """The digest of everything written so far."""

    def commit(
        self, *, expected_digest: str | None = None, expected_size: int | None = None
    ) -> BlobInfo:
        """Verify size and digest (these override the writer's expectations when given), make
        the blob durable and visible. Raises DigestMismatch (the ingest is then removed)."""

    def abort(self) -> None:
        """Discard the ingest and its data."""

    def close(self) -> None:
        """Release the ref, keeping the data written so far for resumption."""

    def __enter__(self) -> ContentWriter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Provider(Protocol):
    """Reads committed blobs."""

    def info(self, digest: str) -> BlobInfo:
        """The blob's info; NotFound if it is not stored."""

    def exists(self, digest: str) -> bool: ...

    def open_blob(self, digest: str) -> BinaryIO:
        """A binary file object positioned at the start of the blob; NotFound if absent."""

    def read_blob(self, digest: str) -> bytes:
        """The whole blob (for small blobs: manifests, configs, indexes)."""


@runtime_checkable
class Ingester(Protocol):
    """Writes new blobs through resumable, verified ingests."""

    def writer(
        self,
        ref: str,
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
    ) -> ContentWriter:
        """Open (or resume) the ingest named ``ref``. Unavailable if another writer holds it."""


@runtime_checkable
class Manager(Protocol):
    """Lists and deletes committed blobs."""

    def info(self, digest: str) -> BlobInfo: ...

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob, in no particular order."""

    def delete(self, digest: str) -> None:
        """Remove the blob; NotFound if it is not stored."""

    def usage(self) -> tuple[int, int]:
        """(bytes used, inodes used) by committed blobs."""


@runtime_checkable
class IngestManager(Protocol):
    """Lists and aborts in-progress ingests (partial downloads)."""

    def list_ingests(self) -> list[IngestStatus]: ...

    def abort(self, ref: str) -> None:
        """Discard the ingest named ``ref``; NotFound if there is none."""


class BlobStore(Provider, Ingester, Protocol):
    """Read blobs and add blobs: what pulls and imports need of a store."""


# ---- capabilities beyond the roles: only some stores have them, so callers ask -------------


@runtime_checkable
class BlobFiles(Protocol):
    """Capability: each committed blob is a file (the local store), which a reader may open
    itself, unbuffered, instead of through ``open_blob``."""

    def blob_path(self, digest: str) -> Path: ...


@runtime_checkable
class ReplayableWriter(Protocol):
    """Capability of a writer: a resumed ingest (``offset`` > 0) can hand back the bytes it
    already holds, so a consumer that needs the whole stream need not download them again."""

    def open_written(self) -> BinaryIO: ...


@runtime_checkable
class Store(Provider, Ingester, Manager, IngestManager, Protocol):
    """Everything a content store does; implementations provide this whole set."""
