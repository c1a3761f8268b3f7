"""The metadata database: sqlite in WAL mode, one writer, a schema versioned by migrations.

Why sqlite: crash-consistent transactions from the standard library. Every write is a short
transaction on one connection guarded by a lock; reads use the same connection (sqlite
serialises them cheaply) because the daemon answers list/status calls from memory anyway.
All calls block: async callers run them with ``asyncio.to_thread``.

The schema is written down in ``MIGRATIONS`` below: entry *n* brings a database from version
*n* to *n + 1*. Never edit a shipped migration; append a new one.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime.errors import FailedPrecondition
from runtime.metadata.salvage import DamageReport, move_aside, salvage

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: images. An image is identified by its config digest (the CRI image id); names
    # (tags and digest references) point at it; blobs and snapshots it needs are listed so that
    # garbage collection can tell what is still referenced.
    """
    CREATE TABLE images (
        id                   TEXT PRIMARY KEY,  -- config digest
        manifest_digest      TEXT NOT NULL,     -- the platform manifest
        manifest_media_type  TEXT NOT NULL,
        size                 INTEGER NOT NULL,  -- compressed bytes: manifest + config + layers
        chain_id             TEXT NOT NULL,     -- top layer's chain id ('' for no layers)
        config_json          TEXT NOT NULL,
        created_at           REAL NOT NULL
    );
    CREATE TABLE image_names (
        name        TEXT PRIMARY KEY,           -- normalised 'repo:tag' or 'repo@digest'
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL CHECK (kind IN ('tag', 'digest'))
    );
    CREATE INDEX image_names_by_image ON image_names(image_id);
    CREATE TABLE image_blobs (
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        digest      TEXT NOT NULL,
        PRIMARY KEY (image_id, digest)
    );
    CREATE TABLE image_snapshots (
        image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        chain_id    TEXT NOT NULL,
        PRIMARY KEY (image_id, chain_id)
    );
    """,
    # 1 -> 2: pod sandboxes and containers. The record is the runtime's dataclass as JSON
    # (runtime/codec.py); the columns beside it are what lookups and constraints need. A name
    # key is kubelet's identity of a pod or container (name, namespace, uid, attempt): one
    # record may hold it at a time.
    """
    CREATE TABLE sandboxes (
        id          TEXT PRIMARY KEY,
        name_key    TEXT NOT NULL UNIQUE,
        record      TEXT NOT NULL
    );
    CREATE TABLE containers (
        id          TEXT PRIMARY KEY,
        sandbox_id  TEXT NOT NULL,
        name_key    TEXT NOT NULL UNIQUE,
        record      TEXT NOT NULL
    );
    CREATE INDEX containers_by_sandbox ON containers(sandbox_id);
    """,
)


class Database:
    """One sqlite database file. Construct, then ``open()``; ``close()`` when done.

    A file that sqlite finds damaged at ``open`` is moved aside and replaced by a fresh
    database holding every row still readable from it (:mod:`runtime.metadata.salvage`);
    ``damage`` then says what happened."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self.damage: DamageReport | None = None

    @property
    def path(self) -> Path:
        return self._path

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connect()
            return
        except sqlite3.DatabaseError as exc:
            reason = str(exc)
            self.close()
        moved = move_aside(self._path)
        self._connect()
        conn = self._require()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = salvage(moved, conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.damage = DamageReport(moved_to=moved, reason=reason, tables=tables)

    def _connect(self) -> None:
        conn = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn = conn
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        # damage anywhere in the file shows here, not in the middle of serving
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {verdict}")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _migrate(self) -> None:
        conn = self._require()
        with self._lock:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise FailedPrecondition(
                    f"metadata database {self._path} has schema version {version}, newer than "
                    f"this pinnace understands ({len(MIGRATIONS)}); upgrade pinnace"
                )
            for number in range(version, len(MIGRATIONS)):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in MIGRATIONS[number].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number + 1}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise FailedPrecondition(f"metadata database {self._path} is not open")
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        conn = self._require()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        conn = self._require()
        with self._lock:
            return conn.execute(sql, params).fetchall()
