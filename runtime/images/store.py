"""Image records: what the node has pulled, by id (config digest) and by name.

The store keeps every record in memory (list and status RPCs are polled every second and
must never touch disk) and writes through to the metadata database in one transaction per
change, so that a crash leaves either the old or the new state.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.errors import InvalidArgument, NotFound
from runtime.metadata.db import Database

_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_HEX_PREFIX = re.compile(r"^[a-f0-9]{1,64}$")


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image on this node.

    ``id`` is the digest of the image config (the CRI image id, also what PullImage returns as
    ``image_ref``). ``repo_tags`` are ``name:tag`` references and ``repo_digests`` are
    ``name@digest`` references (the digest being what the registry resolved the name to: an
    index for multi-platform images). ``blobs`` and ``chain_ids`` list the content and
    snapshots the image needs, for garbage collection.
    """

    id: str
    manifest_digest: str
    manifest_media_type: str
    size: int
    chain_id: str
    config_json: str
    created_at: float
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    blobs: tuple[str, ...] = ()
    chain_ids: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def user(self) -> str:
        """The image config's ``User`` ("" when the image does not set one)."""
        runtime_config = self.config.get("config") or {}
        return str(runtime_config.get("User") or "")

    @property
    def names(self) -> tuple[str, ...]:
        return self.repo_tags + self.repo_digests


def _parse_config(config_json: str) -> Mapping[str, Any]:
    try:
        data = json.loads(config_json)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class ImageStore:
    """Image records in memory, written through to the metadata database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._by_id: dict[str, ImageRecord] = {}
        self._by_name: dict[str, str] = {}

    def load(self) -> None:
        """Read every record from the database (at daemon start)."""
        images = self._db.query("SELECT * FROM images")
        names = self._db.query("SELECT name, image_id, kind FROM image_names ORDER BY name")
        blobs = self._db.query("SELECT image_id, digest FROM image_blobs")
        snaps = self._db.query("SELECT image_id, chain_id FROM image_snapshots")
        tags: dict[str, list[str]] = {}
        digests: dict[str, list[str]] = {}
        by_name: dict[str, str] = {}
        for row in names:
            (tags if row["kind"] == "tag" else digests).setdefault(row["image_id"], []).append(
                row["name"]
            )
            by_name[row["name"]] = row["image_id"]
        blob_map: dict[str, list[str]] = {}
        for row in blobs:
            blob_map.setdefault(row["image_id"], []).append(row["digest"])
        snap_map: dict[str, list[str]] = {}
        for row in snaps:
            snap_map.setdefault(row["image_id"], []).append(row["chain_id"])
        by_id: dict[str, ImageRecord] = {}
        for row in images:
            image_id = row["id"]
            by_id[image_id] = ImageRecord(
                id=image_id,
                manifest_digest=row["manifest_digest"],
                manifest_media_type=row["manifest_media_type"],
                size=row["size"],
                chain_id=row["chain_id"],
                config_json=row["config_json"],
                created_at=row["created_at"],
                repo_tags=tuple(tags.get(image_id, ())),
                repo_digests=tuple(digests.get(image_id, ())),
                blobs=tuple(sorted(blob_map.get(image_id, ()))),
                chain_ids=tuple(snap_map.get(image_id, ())),
                config=_parse_config(row["config_json"]),
            )
        with self._lock:
            self._by_id = by_id
            self._by_name = by_name

    # ---- reads: memory only -------------------------------------------------------------

    def list(self) -> list[ImageRecord]:
        with self._lock:
            return list(self._by_id.values())

    def get(self, image_id: str) -> ImageRecord:
        with self._lock:
            record = self._by_id.get(image_id)
        if record is None:
            raise NotFound(f"image {image_id} not found")
        return record

    def lookup(self, text: str, *, normalized_name: str | None = None) -> ImageRecord | None:
        """Find an image by id (``sha256:<hex>``, bare hex, or a unique id prefix) or by a
        normalised name. Returns None when nothing matches."""
        with self._lock:
            if normalized_name is not None and normalized_name in self._by_name:
                return self._by_id[self._by_name[normalized_name]]
            if text in self._by_id:
                return self._by_id[text]
            hex_part = text.removeprefix("sha256:")
            if _HEX64.match(hex_part):
                return self._by_id.get(f"sha256:{hex_part}")
            if _HEX_PREFIX.match(hex_part) and normalized_name is None:
                matches = [r for i, r in self._by_id.items() if i[7:].startswith(hex_part)]
                if len(matches) > 1:
                    raise InvalidArgument(
                        f"image id prefix {text!r} is ambiguous: it matches {len(matches)} images"
                    )
                return matches[0] if matches else None
        return None

    def referenced_blobs(self) -> set[str]:
        with self._lock:
            return {d for r in self._by_id.values() for d in r.blobs}

    def referenced_snapshots(self) -> set[str]:
        with self._lock:
            return {c for r in self._by_id.values() for c in r.chain_ids}

    # ---- writes: database first, then memory ----------------------------------------------

    def put(
        self,
        record: ImageRecord,
        *,
        tags: Iterable[str] = (),
        digests: Iterable[str] = (),
    ) -> ImageRecord:
        """Create or update ``record`` and point the given names at it, moving names away from
        any other image they pointed at. Returns the stored record."""
        new_names = [(n, "tag") for n in tags] + [(n, "digest") for n in digests]
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO images (id, manifest_digest, manifest_media_type, size,"
                " chain_id, config_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.manifest_digest,
                    record.manifest_media_type,
                    record.size,
                    record.chain_id,
                    record.config_json,
                    record.created_at,
                ),
            )
            for name, kind in new_names:
                conn.execute(
                    "INSERT INTO image_names (name, image_id, kind) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id, "
                    "kind = excluded.kind",
                    (name, record.id, kind),
                )
            conn.executemany(
                "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?, ?)",
                [(record.id, d) for d in record.blobs],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO image_snapshots (image_id, chain_id) VALUES (?, ?)",
                [(record.id, c) for c in record.chain_ids],
            )
        with self._lock:
            for name, _kind in new_names:
                previous = self._by_name.get(name)
                if previous is not None and previous != record.id and previous in self._by_id:
                    old = self._by_id[previous]
                    self._by_id[previous] = replace(
                        old,
                        repo_tags=tuple(t for t in old.repo_tags if t != name),
                        repo_digests=tuple(d for d in old.repo_digests if d != name),
                    )
                self._by_name[name] = record.id
            current = self._by_id.get(record.id, record)
            tag_list = list(current.repo_tags)
            digest_list = list(current.repo_digests)
            for name, kind in new_names:
                target = tag_list if kind == "tag" else digest_list
                if name not in target:
                    target.append(name)
            stored = replace(
                current,
                repo_tags=tuple(sorted(tag_list)),
                repo_digests=tuple(sorted(digest_list)),
                config=current.config or _parse_config(current.config_json),
            )
            self._by_id[record.id] = stored
        return stored

    def remove(self, image_id: str) -> ImageRecord | None:
        """Delete the image and all its names. Returns what was removed (None if absent)."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
        with self._lock:
            record = self._by_id.pop(image_id, None)
            if record is not None:
                for name in record.names:
                    if self._by_name.get(name) == image_id:
                        del self._by_name[name]
        return record

    def untag(self, name: str) -> ImageRecord | None:
        """Remove one name. Returns the image it pointed at, updated (None if unknown)."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM image_names WHERE name = ?", (name,))
        with self._lock:
            image_id = self._by_name.pop(name, None)
            if image_id is None or image_id not in self._by_id:
                return None
            old = self._by_id[image_id]
            updated = replace(
                old,
                repo_tags=tuple(t for t in old.repo_tags if t != name),
                repo_digests=tuple(d for d in old.repo_digests if d != name),
            )
            self._by_id[image_id] = updated
            return updated
