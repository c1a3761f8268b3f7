"""Garbage collection of content and snapshots that no image needs any more.

Roots are the image records (their blobs and chain ids). The image service never runs a
collection while a pull or import is writing (it defers it to the end of the last one), so no
lease bookkeeping is needed. Only committed snapshots named by chain id and blobs are
collected here; active snapshots belong to containers or to pulls, except the ``extract-``
snapshots a crashed pull left, which ``collect(startup=True)`` removes.
Runs in a thread: it blocks on disk.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from runtime.content.interfaces import Manager
from runtime.errors import FailedPrecondition, NotFound
from runtime.images.store import ImageStore
from runtime.snapshots.interfaces import Kind, Snapshotter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollectResult:
    blobs_removed: int
    snapshots_removed: int


class Collector:
    """Deletes blobs and committed snapshots that no image references."""

    def __init__(self, *, content: Manager, snapshotter: Snapshotter, images: ImageStore) -> None:
        self._content = content
        self._sn = snapshotter
        self._images = images
        self._lock = threading.Lock()

    def collect(self, *, startup: bool = False) -> CollectResult:
        with self._lock:
            blob_roots = self._images.referenced_blobs()
            snap_roots = self._images.referenced_snapshots()
            blobs = 0
            for info in list(self._content.walk()):
                if info.digest not in blob_roots:
                    try:
                        self._content.delete(info.digest)
                        blobs += 1
                    except NotFound:
                        pass
            snaps = self._collect_snapshots(snap_roots, startup=startup)
        if blobs or snaps:
            log.info("garbage collection removed %d blobs and %d snapshots", blobs, snaps)
        return CollectResult(blobs_removed=blobs, snapshots_removed=snaps)

    def _collect_snapshots(self, roots: set[str], *, startup: bool) -> int:
        infos = {info.key: info for info in self._sn.walk()}
        # Everything an active snapshot or a root stands on is kept.
        keep: set[str] = set()

        def keep_chain(key: str) -> None:
            while key and key not in keep:
                keep.add(key)
                info = infos.get(key)
                key = info.parent if info is not None else ""

        for key, info in infos.items():
            is_leftover = startup and key.startswith("extract-")
            if key in roots or (info.kind != Kind.COMMITTED and not is_leftover):
                keep_chain(key)
        removed = 0
        # Remove leaves first: repeat until no candidate is left without children.
        doomed = {k for k in infos if k not in keep}
        while doomed:
            parents = {infos[k].parent for k in doomed}
            leaves = [k for k in doomed if k not in parents]
            if not leaves:
                break
            for key in leaves:
                try:
                    self._sn.remove(key)
                    removed += 1
                except (NotFound, FailedPrecondition) as exc:
                    log.debug("snapshot %s not collected: %s", key, exc)
                doomed.discard(key)
        return removed
