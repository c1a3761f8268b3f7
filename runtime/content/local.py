"""The on-disk content store.

Layout under ``root``::

    blobs/<algorithm>/<hex>          committed blobs, read-only (0444), named by digest
    ingest/<sha256(ref)>/ref         the ingest ref (the directory name is its hash)
    ingest/<sha256(ref)>/data        bytes written so far
    ingest/<sha256(ref)>/expected    the expected digest, or empty
    ingest/<sha256(ref)>/total       the expected size, or empty

One writer per ref: the writer holds ``flock(LOCK_EX)`` on the ingest directory, so a second
writer, in this process or another, gets Unavailable instead of interleaving bytes. Data is
written through a 1 MiB buffer and hashed incrementally; a new ingest is written past the page
cache (:mod:`runtime.directio`: a blob is written once and read seldom, and the page-cache copy
was the largest CPU cost of a pull). It is fsynced once, at commit, and then renamed into
``blobs/`` (rename is atomic, so a blob is either absent or complete).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from runtime.content.interfaces import BlobInfo, IngestStatus
from runtime.directio import DirectAppender
from runtime.errors import (
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from runtime.ocispec import validate_digest

_BUFFER = 1 << 20
_ALGORITHMS = ("sha256", "sha512")


class _DataFile(Protocol):
    """What a writer needs of its data file: a buffered file or a :class:`DirectAppender`."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


def _algorithm_of(digest: str | None) -> str:
    return digest.split(":", 1)[0] if digest else "sha256"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    """A content store in a directory; implements :class:`runtime.content.interfaces.Store`."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    # -- Provider ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where the blob for ``digest`` lives (whether or not it exists)."""
        algorithm, _, hexpart = validate_digest(digest).partition(":")
        return self._root / "blobs" / algorithm / hexpart

    def info(self, digest: str) -> BlobInfo:
        try:
            st = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None
        return BlobInfo(digest=digest, size=st.st_size, created_at=st.st_mtime)

    def exists(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb", buffering=_BUFFER)
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    # -- Manager ----------------------------------------------------------------------------

    def walk(self) -> Iterator[BlobInfo]:
        for algorithm in _ALGORITHMS:
            directory = self._root / "blobs" / algorithm
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                digest = f"{algorithm}:{entry.name}"
                try:
                    validate_digest(digest)
                    st = entry.stat(follow_symlinks=False)
                except (InvalidArgument, FileNotFoundError):
                    continue
                yield BlobInfo(digest=digest, size=st.st_size, created_at=st.st_mtime)

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest} not found") from None

    def usage(self) -> tuple[int, int]:
        size = inodes = 0
        for blob in self.walk():
            size += blob.size
            inodes += 1
        return size, inodes

    # -- Ingester ---------------------------------------------------------------------------

    def _ingest_dir(self, ref: str) -> Path:
        return self._root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()

    def _lock_ingest(self, ref: str, *, create: bool) -> tuple[Path, int]:
        """Lock the ingest directory of ``ref``; return it and the fd holding the lock."""
        directory = self._ingest_dir(ref)
        # Another holder may remove the directory (commit, abort) between our open and our
        # flock; then the lock is on a dead inode and we go round again.
        for _ in range(8):
            if create:
                directory.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                if create:
                    continue
                raise NotFound(f"ingest {ref} not found") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise Unavailable(f"ingest {ref} is locked") from None
            try:
                same = os.stat(directory).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return directory, fd
            os.close(fd)
            if not create:
                raise NotFound(f"ingest {ref} not found")
        raise Unavailable(f"ingest {ref} keeps being removed while we open it")

    def writer(
        self,
        ref: str,
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
    ) -> LocalWriter:
        if not ref:
            raise InvalidArgument("an ingest ref must not be empty")
        if expected_digest is not None:
            validate_digest(expected_digest)
        if expected_size is not None and expected_size < 0:
            raise InvalidArgument(f"expected size {expected_size} is negative")
        directory, lock_fd = self._lock_ingest(ref, create=True)
        try:
            return LocalWriter._open(
                self,
                ref,
                directory,
                lock_fd,
                expected_digest=expected_digest,
                expected_size=expected_size,
            )
        except BaseException:
            os.close(lock_fd)
            raise

    # -- IngestManager ----------------------------------------------------------------------

    def list_ingests(self) -> list[IngestStatus]:
        out: list[IngestStatus] = []
        try:
            entries = list(os.scandir(self._root / "ingest"))
        except FileNotFoundError:
            return out
        for entry in entries:
            directory = Path(entry.path)
            ref = _read_text(directory / "ref")
            try:
                st = os.stat(directory / "data")
            except FileNotFoundError:
                continue
            if ref is None:
                continue
            expected = _read_text(directory / "expected") or None
            total = _read_text(directory / "total") or None
            out.append(
                IngestStatus(
                    ref=ref,
                    offset=st.st_size,
                    expected_digest=expected,
                    expected_size=int(total) if total else None,
                    updated_at=st.st_mtime,
                )
            )
        return out

    def abort(self, ref: str) -> None:
        directory, fd = self._lock_ingest(ref, create=False)
        try:
            shutil.rmtree(directory)
        finally:
            os.close(fd)


class LocalWriter:
    """A :class:`runtime.content.interfaces.ContentWriter` for :class:`LocalStore`.

    Not thread-safe itself: one writer is used by one producer at a time.
    """

    def __init__(
        self,
        store: LocalStore,
        ref: str,
        directory: Path,
        lock_fd: int,
        data: _DataFile,
        hasher: hashlib._Hash,
        offset: int,
        expected_digest: str | None,
        expected_size: int | None,
    ) -> None:
        self._store = store
        self._ref = ref
        self._directory = directory
        self._lock_fd = lock_fd
        self._data: _DataFile | None = data
        self._hasher = hasher
        self._offset = offset
        self._expected_digest = expected_digest
        self._expected_size = expected_size

    @classmethod
    def _open(
        cls,
        store: LocalStore,
        ref: str,
        directory: Path,
        lock_fd: int,
        *,
        expected_digest: str | None,
        expected_size: int | None,
    ) -> LocalWriter:
        hasher = hashlib.new(_algorithm_of(expected_digest))
        data_path = directory / "data"
        expected_text = expected_digest or ""
        total_text = "" if expected_size is None else str(expected_size)
        data: _DataFile
        resumable = (
            data_path.exists()
            and _read_text(directory / "ref") == ref
            and (_read_text(directory / "expected") or "") == expected_text
            and (_read_text(directory / "total") or "") == total_text
        )
        if resumable:
            resumed = open(data_path, "r+b", buffering=_BUFFER)
            offset = 0
            while chunk := resumed.read(_BUFFER):
                hasher.update(chunk)
                offset += len(chunk)
            if expected_size is not None and offset > expected_size:
                # More bytes than promised: nothing to resume, start again.
                resumed.seek(0)
                resumed.truncate()
                hasher = hashlib.new(_algorithm_of(expected_digest))
                offset = 0
            data = resumed
        else:
            (directory / "ref").write_text(ref)
            (directory / "expected").write_text(expected_text)
            (directory / "total").write_text(total_text)
            data = DirectAppender.create(data_path, mode=0o666)
            offset = 0
        return cls(
            store, ref, directory, lock_fd, data, hasher, offset, expected_digest, expected_size
        )

    @property
    def ref(self) -> str:
        return self._ref

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def data_path(self) -> Path:
        """The ingest's data file; its first ``offset`` bytes are written (flushed once the
        writer was resumed or closed), so a resumed pull can re-read the part it already has."""
        return self._directory / "data"

    def open_written(self) -> BinaryIO:
        """The bytes this ingest holds so far (:class:`ReplayableWriter`)."""
        return open(self.data_path, "rb")

    def _file(self) -> _DataFile:
        if self._data is None:
            raise FailedPrecondition(f"writer for ingest {self._ref} is closed")
        return self._data

    def write(self, data: bytes) -> None:
        f = self._file()
        size = len(data)
        if self._expected_size is not None and self._offset + size > self._expected_size:
            what = f"blob {self._expected_digest or self._ref}"
            got = self._offset + size
            self.abort()
            raise DigestMismatch(
                what=what, expected=f"{self._expected_size} bytes", actual=f"at least {got} bytes"
            )
        f.write(data)
        self._hasher.update(data)
        self._offset += size

    def digest(self) -> str:
        return f"{self._hasher.name}:{self._hasher.hexdigest()}"

    def commit(
        self, *, expected_digest: str | None = None, expected_size: int | None = None
    ) -> BlobInfo:
        f = self._file()
        want_digest = expected_digest or self._expected_digest
        want_size = self._expected_size if expected_size is None else expected_size
        if want_digest is not None:
            validate_digest(want_digest)
        actual = self.digest()
        if want_size is not None and self._offset != want_size:
            self.abort()
            raise DigestMismatch(
                what=f"blob {want_digest or actual}",
                expected=f"{want_size} bytes",
                actual=f"{self._offset} bytes",
            )
        if want_digest is not None and want_digest != actual:
            self.abort()
            raise DigestMismatch(what="blob", expected=want_digest, actual=actual)
        f.flush()
        os.fsync(f.fileno())
        os.fchmod(f.fileno(), 0o444)
        f.close()
        self._data = None
        target = self._store.blob_path(actual)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self._directory / "data", target)
            _fsync_dir(target.parent)
        self._release(remove=True)
        try:
            created = os.stat(target).st_mtime
        except FileNotFoundError:  # deleted by someone else already; the commit still happened
            created = time.time()
        return BlobInfo(digest=actual, size=self._offset, created_at=created)

    def abort(self) -> None:
        if self._data is not None:
            with contextlib.suppress(OSError):
                self._data.close()
            self._data = None
        self._release(remove=True)

    def close(self) -> None:
        if self._data is not None:
            try:
                self._data.close()
            finally:
                self._data = None
                self._release(remove=False)

    def _release(self, *, remove: bool) -> None:
        if self._lock_fd < 0:
            return
        try:
            if remove:
                shutil.rmtree(self._directory, ignore_errors=True)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
