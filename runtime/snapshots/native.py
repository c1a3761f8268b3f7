"""The native (copying) snapshotter: the fallback where overlayfs is unavailable.

A new snapshot starts as a full copy of its parent's tree (owners, modes, xattrs, hard links
within the tree, devices, symlinks and timestamps preserved), and is mounted as a bind of its own
directory. Layers depend on their parent's content, so ``independent_layers`` is False.
"""

from __future__ import annotations

from pathlib import Path

from runtime.mount import Mount
from runtime.snapshots import metadata as md
from runtime.snapshots.base import DirectorySnapshotter
from runtime.snapshots.copy import copy_tree
from runtime.snapshots.interfaces import Kind


class NativeSnapshotter(DirectorySnapshotter):
    """Snapshots as full directory copies; see the module docstring."""

    independent_layers = False

    def _populate(self, fs: Path, parents: list[md.Record]) -> None:
        if parents:
            copy_tree(self.fs_dir(parents[0]), fs)

    def _mounts(self, record: md.Record, parents: list[md.Record]) -> list[Mount]:
        mode = "ro" if record.kind is Kind.VIEW else "rw"
        return [Mount("bind", str(self.fs_dir(record)), ("rbind", mode))]
