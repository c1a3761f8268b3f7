"""A damaged metadata database: move it aside and keep what can still be read from it.

sqlite detects damage as ``sqlite3.DatabaseError`` ("file is not a database", "database disk
image is malformed") when the file is opened, migrated or checked (``PRAGMA quick_check``). A
daemon that refused to start over that would keep a node's runtime down, so the damaged file
(with its ``-wal`` and ``-shm`` companions) is renamed ``<name>.damaged-<time>`` for an
operator to inspect, a fresh database is created, and every row that still reads back from the
damaged one is copied over, table by table in dependency order (an image's names after the
image). Rows that cannot be read, or refer to a row that was lost, are dropped and counted.
Whatever records are lost, the start-up reconciliation then treats like the remains of a crash
(state directories without records are torn down), so nothing is left running unknown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Tables in the order rows can be inserted (referenced before referencing).
TABLES: tuple[str, ...] = (
    "images",
    "image_names",
    "image_blobs",
    "image_snapshots",
    "sandboxes",
    "containers",
)
_COMPANIONS = ("-wal", "-shm")
_GIVE_UP = 2000  # rowids probed past the last readable row of a damaged table


@dataclass(frozen=True, slots=True)
class TableSalvage:
    """Rows of one table: copied into the fresh database, and dropped (known to exist but
    unreadable, or referring to a row that was lost). Rows past the last readable one of a
    damaged table cannot be counted; the start-up reconciliation reports what they left."""

    table: str
    kept: int
    dropped: int


@dataclass(frozen=True, slots=True)
class DamageReport:
    """What happened to a damaged database: where it went, why, and what was kept."""

    moved_to: Path
    reason: str
    tables: tuple[TableSalvage, ...]

    def summary(self) -> str:
        parts = [f"{t.table} {t.kept} kept/{t.dropped} dropped" for t in self.tables]
        return (
            f"metadata database was damaged ({self.reason}); moved to {self.moved_to}; "
            f"salvaged: {', '.join(parts) or 'nothing readable'}"
        )


def move_aside(path: Path) -> Path:
    """Rename the database and its companions to ``<name>.damaged-<unix time>``. Blocking."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    path.replace(target)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            companion.replace(target.with_name(target.name + suffix))
    return target


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def _readable_rows(src: sqlite3.Connection, table: str, columns: Sequence[str]) -> tuple[list, int]:
    """Every row of ``table`` that reads back; on damage, row by rowid (so one bad page
    costs only its rows), until ``_GIVE_UP`` rowids in a row yield nothing. Returns (rows,
    rowids known to exist but unreadable before the last good row)."""
    select = f"SELECT {', '.join(columns)} FROM {table}"
    try:
        return src.execute(select).fetchall(), 0
    except sqlite3.DatabaseError:
        pass
    rows: list = []
    errors_since_good = bad = misses = 0
    rowid = 0
    while misses < _GIVE_UP:
        rowid += 1
        try:
            row = src.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            errors_since_good += 1
            misses += 1
            continue
        if row is None:
            misses += 1
            continue
        rows.append(row)
        bad += errors_since_good
        errors_since_good = misses = 0
    return rows, bad


def _padded_copy(damaged: Path) -> Path | None:
    """A truncated file (shorter than the page count its header gives) makes sqlite refuse
    even its intact schema; a copy padded with zero pages reads again up to the cut."""
    try:
        with open(damaged, "rb") as f:
            header = f.read(100)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", header[28:32])[0]
    if not page_size or size >= pages * page_size or pages * page_size > 1 << 32:
        return None
    copy = damaged.with_name(damaged.name + ".padded")
    shutil.copyfile(damaged, copy)
    with open(copy, "r+b") as f:
        f.truncate(pages * page_size)
    return copy


def salvage(damaged: Path, fresh: sqlite3.Connection) -> tuple[TableSalvage, ...]:
    """Copy every readable row of ``damaged`` into ``fresh`` (already migrated). Blocking."""
    padded = _padded_copy(damaged)
    try:
        return _salvage(padded or damaged, fresh)
    finally:
        if padded is not None:
            with contextlib.suppress(OSError):
                padded.unlink()


def _salvage(damaged: Path, fresh: sqlite3.Connection) -> tuple[TableSalvage, ...]:
    try:
        src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    except sqlite3.Error:
        return ()
    out = []
    try:
        for table in TABLES:
            try:
                present = set(_columns(src, table))
            except sqlite3.DatabaseError:
                continue
            columns = [c for c in _columns(fresh, table) if c in present]
            if not columns:
                continue
            rows, bad = _readable_rows(src, table, columns)
            kept = 0
            insert = (
                f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            for row in rows:
                try:
                    cursor = fresh.execute(insert, tuple(row))
                except sqlite3.Error:  # refers to a lost row, or violates a constraint
                    bad += 1
                    continue
                if cursor.rowcount == 1:
                    kept += 1
                else:
                    bad += 1
            out.append(TableSalvage(table, kept, bad))
    finally:
        src.close()
    return tuple(out)
