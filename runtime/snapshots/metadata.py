"""A snapshotter's own small sqlite database (``root/metadata.db``, WAL).

Schema, version 1 (``PRAGMA user_version``)::

    snapshots(
        id         INTEGER PRIMARY KEY AUTOINCREMENT  -- names the directory snapshots/<id>
        key        TEXT NOT NULL UNIQUE               -- the snapshot's key (name once committed)
        parent_id  INTEGER REFERENCES snapshots(id)   -- NULL for none
        kind       TEXT NOT NULL                      -- Kind.value
        labels     TEXT NOT NULL                      -- JSON object of strings
        created_at REAL NOT NULL                      -- unix seconds
        size       INTEGER, inodes INTEGER            -- usage measured at commit, else NULL
    )

Callers hold the snapshotter's lock around every use; the connection is shared across threads.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import NotFound
from runtime.snapshots.interfaces import Info, Kind

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES snapshots(id),
    kind TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    size INTEGER,
    inodes INTEGER
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
"""

_SELECT = (
    "SELECT s.id, s.key, s.parent_id, COALESCE(p.key, ''), s.kind, s.labels, s.created_at, "
    "s.size, s.inodes FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id"
)


@dataclass(frozen=True, slots=True)
class Record:
    """One row: a snapshot plus what the snapshotter needs to find its directories."""

    id: int
    key: str
    parent_id: int | None
    parent: str
    kind: Kind
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    size: int | None = None
    inodes: int | None = None

    def info(self) -> Info:
        return Info(
            key=self.key,
            parent=self.parent,
            kind=self.kind,
            created_at=self.created_at,
            labels=dict(self.labels),
        )


def _record(row: tuple) -> Record:  # type: ignore[type-arg]
    return Record(
        id=row[0],
        key=row[1],
        parent_id=row[2],
        parent=row[3],
        kind=Kind(row[4]),
        labels=json.loads(row[5]),
        created_at=row[6],
        size=row[7],
        inodes=row[8],
    )


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database; autocommit mode, transactions are explicit."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return conn


def get(conn: sqlite3.Connection, key: str) -> Record:
    row = conn.execute(f"{_SELECT} WHERE s.key = ?", (key,)).fetchone()
    if row is None:
        raise NotFound(f"snapshot {key} not found")
    return _record(row)


def find(conn: sqlite3.Connection, key: str) -> Record | None:
    row = conn.execute(f"{_SELECT} WHERE s.key = ?", (key,)).fetchone()
    return None if row is None else _record(row)


def by_id(conn: sqlite3.Connection, snapshot_id: int) -> Record:
    row = conn.execute(f"{_SELECT} WHERE s.id = ?", (snapshot_id,)).fetchone()
    if row is None:
        raise NotFound(f"snapshot id {snapshot_id} not found")
    return _record(row)


def all_records(conn: sqlite3.Connection) -> list[Record]:
    return [_record(row) for row in conn.execute(_SELECT)]


def ids(conn: sqlite3.Connection) -> set[int]:
    return {row[0] for row in conn.execute("SELECT id FROM snapshots")}


def has_children(conn: sqlite3.Connection, snapshot_id: int) -> bool:
    row = conn.execute("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1", (snapshot_id,))
    return row.fetchone() is not None


def insert(
    conn: sqlite3.Connection,
    *,
    key: str,
    parent_id: int | None,
    kind: Kind,
    labels: Mapping[str, str],
    created_at: float,
) -> int:
    cur = conn.execute(
        "INSERT INTO snapshots (key, parent_id, kind, labels, created_at) VALUES (?, ?, ?, ?, ?)",
        (key, parent_id, kind.value, json.dumps(dict(labels), sort_keys=True), created_at),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def mark_committed(
    conn: sqlite3.Connection,
    snapshot_id: int,
    *,
    name: str,
    parent_id: int | None,
    labels: Mapping[str, str],
    size: int,
    inodes: int,
) -> None:
    conn.execute(
        "UPDATE snapshots SET key = ?, kind = ?, parent_id = ?, labels = ?, size = ?, inodes = ? "
        "WHERE id = ?",
        (
            name,
            Kind.COMMITTED.value,
            parent_id,
            json.dumps(dict(labels), sort_keys=True),
            size,
            inodes,
            snapshot_id,
        ),
    )


def set_labels(conn: sqlite3.Connection, snapshot_id: int, labels: Mapping[str, str]) -> None:
    conn.execute(
        "UPDATE snapshots SET labels = ? WHERE id = ?",
        (json.dumps(dict(labels), sort_keys=True), snapshot_id),
    )


def delete(conn: sqlite3.Connection, snapshot_id: int) -> None:
    conn.execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,))
