"""The overlayfs snapshotter.

Each snapshot owns ``snapshots/<id>/fs`` (its layer: the overlay upper directory) and ``work``.
Mounts:

- active, no parent: one read-write ``rbind`` of ``fs``;
- active with parents: ``overlay`` with ``lowerdir=<parents' fs, nearest first>``, ``upperdir=fs``
  and ``workdir=work``;
- view of one parent: a read-only bind of the parent's ``fs``; of a chain: an overlay of lower
  directories only (read-only by construction); of nothing: a read-only bind of its empty ``fs``.

Every overlay carries ``index=off``: with the inodes index on, overlay records in the upper/work
directories which lower directories it was mounted with and refuses (or misbehaves) when the same
layer is shared by many overlays at once, which is exactly how image layers are used. Spelling it
out protects against a host that turned the index on by default (``overlay.index=Y``).

Layers are independent (``independent_layers = True``): deletions in a layer are overlay whiteouts
(0/0 character devices, ``trusted.overlay.opaque``) stored in its own ``fs``, so a layer can be
unpacked without its parent and linked with ``commit(..., parent=...)``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from runtime.mount import Mount, mount_all, unmount
from runtime.snapshots import metadata as md
from runtime.snapshots.base import DirectorySnapshotter
from runtime.snapshots.interfaces import Kind


def supported(root: Path) -> tuple[bool, str]:
    """Whether an overlay can be mounted with its layers under ``root``; (False, why) if not."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".overlay-probe-", dir=root))
    except OSError as exc:
        return False, f"cannot create a probe directory under {root}: {exc}"
    try:
        for name in ("lower1", "lower2", "upper", "work", "merged"):
            (probe / name).mkdir()
        m = Mount(
            "overlay",
            "overlay",
            (
                "index=off",
                f"lowerdir={probe / 'lower1'}:{probe / 'lower2'}",
                f"upperdir={probe / 'upper'}",
                f"workdir={probe / 'work'}",
            ),
        )
        try:
            mount_all([m], probe / "merged")
        except OSError as exc:
            return False, f"overlay mount under {root} failed: {exc}"
        unmount(probe / "merged", detach=True)
        return True, ""
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class OverlaySnapshotter(DirectorySnapshotter):
    """Snapshots as overlayfs layers; see the module docstring."""

    independent_layers = True
    _uses_workdir = True
    supported = staticmethod(supported)

    def _mounts(self, record: md.Record, parents: list[md.Record]) -> list[Mount]:
        fs = self.fs_dir(record)
        if record.kind is Kind.VIEW:
            if not parents:
                return [Mount("bind", str(fs), ("rbind", "ro"))]
            if len(parents) == 1:
                return [Mount("bind", str(self.fs_dir(parents[0])), ("rbind", "ro"))]
            lower = ":".join(str(self.fs_dir(p)) for p in parents)
            return [Mount("overlay", "overlay", ("index=off", f"lowerdir={lower}"))]
        if not parents:
            return [Mount("bind", str(fs), ("rbind", "rw"))]
        lower = ":".join(str(self.fs_dir(p)) for p in parents)
        work = self._dir(record.id) / "work"
        return [
            Mount(
                "overlay",
                "overlay",
                ("index=off", f"lowerdir={lower}", f"upperdir={fs}", f"workdir={work}"),
            )
        ]
