"""A damaged metadata database is moved aside and what still reads back is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.metadata.db import Database

PAGE = 4096


def _filled(path: Path, sandboxes: int = 400) -> None:
    db = Database(path)
    db.open()
    with db.transaction() as conn:
        conn.execute("INSERT INTO images VALUES ('sha256:i1', 'sha256:m1', 'json', 1, '', '{}', 0)")
        conn.execute("INSERT INTO image_names VALUES ('r/a:1', 'sha256:i1', 'tag')")
        for n in range(sandboxes):
            record = json.dumps({"id": f"s{n}", "padding": "x" * 300})
            conn.execute("INSERT INTO sandboxes VALUES (?, ?, ?)", (f"s{n}", f"k{n}", record))
    # fold the WAL into the file, so damage to the file is damage to the rows
    db.query("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def _count(db: Database, table: str) -> int:
    return int(db.query(f"SELECT count(*) FROM {table}")[0][0])


def test_an_intact_database_opens_with_no_damage(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    _filled(path)
    db = Database(path)
    db.open()
    assert db.damage is None
    assert _count(db, "sandboxes") == 400
    db.close()


def test_a_file_that_is_not_a_database_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    db = Database(path)
    db.open()
    assert db.damage is not None
    assert db.damage.moved_to.exists()
    assert db.damage.moved_to.name.startswith("metadata.db.damaged-")
    assert db.damage.moved_to.read_bytes().startswith(b"this is not sqlite")
    assert _count(db, "sandboxes") == 0  # a fresh, migrated database
    assert "moved to" in db.damage.summary()
    db.close()


@pytest.mark.parametrize("damage", ["truncated", "page overwritten"])
def test_rows_that_still_read_back_are_kept(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "metadata.db"
    _filled(path)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        start = (len(data) // PAGE - 3) * PAGE
        data[start : start + PAGE] = b"\xa5" * PAGE
    path.write_bytes(bytes(data))

    db = Database(path)
    db.open()
    assert db.damage is not None
    kept = {t.table: t for t in db.damage.tables}
    # the image and its name sit in the first pages: both survive, in that order
    assert kept["images"].kept == 1 and kept["image_names"].kept == 1
    sandboxes = _count(db, "sandboxes")
    assert 0 < sandboxes < 400
    assert kept["sandboxes"].kept == sandboxes
    assert db.query("PRAGMA quick_check")[0][0] == "ok"
    db.close()
    # the fresh file opens cleanly next time
    again = Database(path)
    again.open()
    assert again.damage is None and _count(again, "sandboxes") == sandboxes
    again.close()


def test_an_emptied_file_is_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    _filled(path)
    path.write_bytes(b"")  # truncated to nothing: sqlite sees an empty database
    db = Database(path)
    db.open()
    assert _count(db, "sandboxes") == 0
    db.close()
