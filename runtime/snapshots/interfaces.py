"""The snapshotter interface (containerd's core/snapshots model). Its docstring is the spec.

Words:

snapshot
    A directory tree managed by a snapshotter, named by a **key** unique within the snapshotter.
parent
    The committed snapshot a snapshot was created from (``""`` for none). A snapshot's content is
    its parent's content plus its own changes; parents form chains down to a base layer.
active
    A writable snapshot made by :meth:`Snapshotter.prepare`. It is mounted (by the caller, using
    the returned mounts) to unpack a layer or to serve as a container's rootfs.
committed
    The read-only result of :meth:`Snapshotter.commit` of an active snapshot, under a new name.
    Only committed snapshots can be parents. A committed snapshot is never mounted directly.
view
    A read-only snapshot of a committed parent (:meth:`Snapshotter.view`); it cannot be committed.
mounts
    The list of :class:`runtime.mount.Mount` that, mounted in order on one target, show the
    snapshot's tree. Snapshotters return mounts as data and never mount anything themselves
    (except :func:`supported` probes).

Lifecycle::

    prepare(key, parent) ──► ACTIVE ──commit(name, key)──► COMMITTED (the active key is gone)
    view(key, parent)    ──► VIEW
    remove(key) for any kind, refused while the snapshot has children

Methods block (file system, sqlite); async callers use ``asyncio.to_thread``. Implementations are
thread-safe.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from runtime.mount import Mount


class Kind(enum.Enum):
    """What a snapshot is for: see the module docstring."""

    VIEW = "view"
    ACTIVE = "active"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class Info:
    """A snapshot's identity and metadata. ``parent`` is ``""`` for none; ``created_at`` is unix
    seconds."""

    key: str
    parent: str
    kind: Kind
    created_at: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """Disk space (allocated bytes) and inodes a snapshot adds over its parent."""

    size: int
    inodes: int


@runtime_checkable
class Snapshotter(Protocol):
    """Creates, commits and removes snapshots and says how to mount them.

    ``independent_layers`` is True when a layer can be unpacked into an active snapshot prepared
    with *no* parent and linked into the chain afterwards with ``commit(name, key,
    parent=<committed>)``: the layer directory does not depend on the parent's content because
    deletions are recorded as whiteouts rather than applied (overlay). This lets an image's layers
    be unpacked in parallel. When False (native), ``commit(..., parent=...)`` raises
    FailedPrecondition and layers must be unpacked in order on top of their parent.
    """

    independent_layers: bool

    def stat(self, key: str) -> Info:
        """The snapshot's info; NotFound if there is none."""

    def usage(self, key: str) -> Usage:
        """Space used by the snapshot's own layer (for committed ones, measured at commit)."""

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an active or view snapshot (FailedPrecondition for committed ones)."""

    def prepare(
        self, key: str, parent: str = "", *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create an active snapshot on top of committed ``parent`` and return its mounts.

        AlreadyExists if ``key`` is taken; NotFound if ``parent`` does not exist;
        FailedPrecondition if ``parent`` is not committed.
        """

    def view(
        self, key: str, parent: str, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """Create a read-only view of committed ``parent`` and return its mounts."""

    def commit(
        self,
        name: str,
        key: str,
        *,
        labels: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> None:
        """Turn active snapshot ``key`` into committed snapshot ``name`` (``key`` stops existing).

        ``labels`` replace the snapshot's labels when given. ``parent`` (only with
        ``independent_layers``) sets the committed snapshot's parent, for a snapshot prepared
        without one; FailedPrecondition if it was prepared with a different parent.
        """

    def remove(self, key: str) -> None:
        """Delete the snapshot. FailedPrecondition if it has children; NotFound if absent. The
        caller unmounts it first.

        When this returns the snapshot is gone from every other method and its key can be
        used again; its data may still be on disk until a background deletion reaches it
        (counted by :meth:`pending_removal`; :meth:`flush` waits for it). A crash before then
        leaves nothing that :meth:`cleanup` does not delete at the next start."""

    def flush(self) -> None:
        """Wait until the data of every snapshot removed so far is deleted."""

    def pending_removal(self) -> Usage:
        """Space held by removed snapshots whose data is not deleted yet (known sizes only:
        committed snapshots' as measured at commit)."""

    def walk(self) -> Iterator[Info]:
        """Every snapshot, in no particular order."""

    def update_labels(self, key: str, labels: Mapping[str, str]) -> Info:
        """Replace the snapshot's labels; returns the updated info."""

    def layer_dir(self, key: str) -> Path:
        """Where a layer diff for active snapshot ``key`` is applied: the overlay upper
        directory, or the native snapshot's whole tree. FailedPrecondition unless active."""

    def cleanup(self) -> int:
        """Delete leftovers of interrupted operations; returns how many were removed. Called
        once at daemon start, before the snapshotter is used."""

    def close(self) -> None:
        """Finish deleting removed snapshots' data and release the metadata database."""
