"""The lifecycle shared by the directory-based snapshotters (overlay and native).

Layout under ``root``::

    metadata.db                  sqlite (see runtime.snapshots.metadata)
    snapshots/<id>/fs            the snapshot's tree (overlay: the upper directory)
    snapshots/<id>/work          overlay's workdir (overlay only)
    snapshots/new-<token>/       a snapshot being populated, before its row exists
    snapshots/.removing-<id>/    a removed snapshot's data, waiting to be deleted (the trash)

Crash safety: a new snapshot's directory is filled under a ``new-`` name and renamed to its id in
the same transaction that inserts its row; a removed one is renamed to ``.removing-<id>`` in the
transaction that deletes its row, and deleted after the commit by a background thread
(``runtime.snapshots.trash``): ``remove`` returns once the row is gone, and the key can be used
again at once. :meth:`cleanup` therefore knows what every leftover means: ``new-*`` and ids
without a row are deleted; ``.removing-<id>`` is deleted if its row is gone (a removal whose
data the thread had not deleted yet), and renamed back if the row survived (the transaction
rolled back). Ids are never reused (``AUTOINCREMENT``), so a ``.removing-<id>`` name is unique.

Durability: every transaction survives the daemon's death (sqlite's WAL is written before the
commit returns). Those that concern committed snapshots (commit, removing a committed one) are
also synced to disk before they return (``synchronous=FULL``), so image layers survive a power
cut. Those that only make or remove a view or an active snapshot (a container's writable layer,
a pull's scratch) are not (``synchronous=NORMAL``): a power cut may roll back the newest of
them, which leaves what :meth:`cleanup` already handles (a directory without a row, or a
``.removing-`` one whose row came back), and the next synced commit writes them out in order.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from runtime import faults
from runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from runtime.mount import Mount
from runtime.snapshots import metadata as md
from runtime.snapshots.interfaces import Info, Kind, Usage
from runtime.snapshots.trash import Trash, delete_trees


def disk_usage(path: Path) -> Usage:
    """Allocated bytes and inodes below ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    size = 0
    stack = [str(path)]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            size += st.st_blocks * 512
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
    return Usage(size=size, inodes=len(seen))


class DirectorySnapshotter:
    """Common lifecycle; subclasses say how a snapshot is populated and mounted."""

    independent_layers: bool = False
    _uses_workdir: bool = False

    def __init__(self, root: Path, *, trash: Trash | None = None) -> None:
        self._root = Path(root)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._trash = trash or Trash()

    @property
    def root(self) -> Path:
        return self._root

    # -- hooks ------------------------------------------------------------------------------

    def _populate(self, fs: Path, parents: list[md.Record]) -> None:
        """Fill a new snapshot's ``fs`` (empty) from its parents (nearest first)."""

    def _mounts(self, record: md.Record, parents: list[md.Record]) -> list[Mount]:
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            (self._root / "snapshots").mkdir(parents=True, exist_ok=True)
            self._conn = md.connect(self._root / "metadata.db")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self, *, synced: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; ``synced=False`` for one that need not survive a power cut
        (see the module's note on durability)."""
        conn = self._db()
        if not synced:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if not synced:
                conn.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        self._trash.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _dir(self, snapshot_id: int) -> Path:
        return self._root / "snapshots" / str(snapshot_id)

    def fs_dir(self, record: md.Record) -> Path:
        return self._dir(record.id) / "fs"

    def _parents(self, conn: sqlite3.Connection, parent_id: int | None) -> list[md.Record]:
        chain: list[md.Record] = []
        while parent_id is not None:
            record = md.by_id(conn, parent_id)
            chain.append(record)
            parent_id = record.parent_id
        return chain

    # -- Snapshotter ------------------------------------------------------------------------

    def stat(self, key: str) -> Info:
        with self._lock:
            return md.get(self._db(), key).info()

    def walk(self) -> Iterator[Info]:
        with self._lock:
            records = md.all_records(self._db())
        return iter([r.info() for r in records])

    def usage(self, key: str) -> Usage:
        with self._lock:
            record = md.get(self._db(), key)
        if record.kind is Kind.COMMITTED and record.size is not None:
            return Usage(size=record.size, inodes=record.inodes or 0)
        return disk_usage(self.fs_dir(record))

    def mounts(self, key: str) -> list[Mount]:
        with self._lock:
            conn = self._db()
            record = md.get(conn, key)
            if record.kind is Kind.COMMITTED:
                raise FailedPrecondition(
                    f"snapshot {key} is committed; mount a view or an active child of it"
                )
            return self._mounts(record, self._parents(conn, record.parent_id))

    def layer_dir(self, key: str) -> Path:
        with self._lock:
            record = md.get(self._db(), key)
        if record.kind is not Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key} is {record.kind.value}, not active")
        return self.fs_dir(record)

    def prepare(
        self, key: str, parent: str = "", *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(
        self, key: str, parent: str, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _lookup_parent(self, conn: sqlite3.Connection, parent: str) -> list[md.Record]:
        if not parent:
            return []
        record = md.get(conn, parent)
        if record.kind is not Kind.COMMITTED:
            raise FailedPrecondition(
                f"parent {parent} is {record.kind.value}; only committed snapshots can be parents"
            )
        return [record, *self._parents(conn, record.parent_id)]

    def _create(
        self, kind: Kind, key: str, parent: str, labels: Mapping[str, str] | None
    ) -> list[Mount]:
        if not key:
            raise InvalidArgument("a snapshot key must not be empty")
        with self._lock:
            conn = self._db()
            if md.find(conn, key) is not None:
                raise AlreadyExists(f"snapshot {key} already exists")
            parents = self._lookup_parent(conn, parent)
        # Populating (a full copy for native) runs outside the lock under a temporary name.
        staging = self._root / "snapshots" / f"new-{secrets.token_hex(8)}"
        try:
            staging.mkdir(mode=0o700)
            (staging / "fs").mkdir(mode=0o755)
            if self._uses_workdir:
                (staging / "work").mkdir(mode=0o700)
            self._populate(staging / "fs", parents)
            # views and active snapshots only (commit makes committed ones)
            with self._lock, self._transaction(synced=False) as conn:
                if md.find(conn, key) is not None:
                    raise AlreadyExists(f"snapshot {key} already exists")
                parents = self._lookup_parent(conn, parent)
                snapshot_id = md.insert(
                    conn,
                    key=key,
                    parent_id=parents[0].id if parents else None,
                    kind=kind,
                    labels=labels or {},
                    created_at=time.time(),
                )
                os.rename(staging, self._dir(snapshot_id))
                record = md.by_id(conn, snapshot_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._mounts(record, parents)

    def commit(
        self,
        name: str,
        key: str,
        *,
        labels: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> None:
        if not name:
            raise InvalidArgument("a committed snapshot's name must not be empty")
        with self._lock:
            record = md.get(self._db(), key)
        if record.kind is not Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key} is {record.kind.value}; only active commits")
        usage = disk_usage(self.fs_dir(record))
        with self._lock, self._transaction() as conn:
            record = md.get(conn, key)
            if record.kind is not Kind.ACTIVE:
                raise FailedPrecondition(f"snapshot {key} is {record.kind.value}")
            if md.find(conn, name) is not None:
                raise AlreadyExists(f"snapshot {name} already exists")
            parent_id = record.parent_id
            if parent is not None and parent != record.parent:
                if not self.independent_layers:
                    raise FailedPrecondition(
                        f"{type(self).__name__} cannot set a parent at commit; prepare "
                        f"{key} on top of {parent} instead"
                    )
                if record.parent_id is not None:
                    raise FailedPrecondition(
                        f"snapshot {key} was prepared on {record.parent}, not {parent}"
                    )
                parent_id = self._lookup_parent(conn, parent)[0].id if parent else None
            md.mark_committed(
                conn,
                record.id,
                name=name,
                parent_id=parent_id,
                labels=record.labels if labels is None else labels,
                size=usage.size,
                inodes=usage.inodes,
            )

    def remove(self, key: str) -> None:
        with self._lock:
            synced = md.get(self._db(), key).kind is Kind.COMMITTED
            with self._transaction(synced=synced) as conn:
                record = md.get(conn, key)
                if md.has_children(conn, record.id):
                    raise FailedPrecondition(f"snapshot {key} has children; remove them first")
                md.delete(conn, record.id)
                doomed = self._root / "snapshots" / f".removing-{record.id}"
                with contextlib.suppress(FileNotFoundError):  # data already gone: drop the row
                    os.rename(self._dir(record.id), doomed)
                # If COMMIT fails below, the rollback leaves a row whose directory is named
                # .removing-<id>; cleanup() renames it back.
        faults.point("snapshot.remove.trashed")
        if record.kind is Kind.COMMITTED and record.size is not None:
            usage = Usage(size=record.size, inodes=record.inodes or 0)
        else:
            usage = Usage(size=0, inodes=1)  # never measured: see runtime.snapshots.trash
        self._trash.put(doomed, usage)

    def flush(self) -> None:
        self._trash.flush()

    def pending_removal(self) -> Usage:
        return self._trash.pending()

    def update_labels(self, key: str, labels: Mapping[str, str]) -> Info:
        with self._lock, self._transaction() as conn:
            record = md.get(conn, key)
            md.set_labels(conn, record.id, labels)
            return md.by_id(conn, record.id).info()

    def cleanup(self) -> int:
        self._trash.flush()  # what this instance removed is deleted, not counted here
        doomed: list[Path] = []
        with self._lock:
            known = md.ids(self._db())
            for entry in list(os.scandir(self._root / "snapshots")):
                name = entry.name
                path = Path(entry.path)
                if name.startswith(".removing-"):
                    suffix = name[len(".removing-") :]
                    if suffix.isdigit() and int(suffix) in known:
                        os.rename(path, self._dir(int(suffix)))
                        continue
                elif name.isdigit() and int(name) in known:
                    continue
                doomed.append(path)
            delete_trees(doomed)
        return len(doomed)
