"""Snapshotters: the interface, overlayfs and the copying fallback."""

from runtime.snapshots.interfaces import Info, Kind, Snapshotter, Usage
from runtime.snapshots.native import NativeSnapshotter
from runtime.snapshots.overlay import OverlaySnapshotter, supported

__all__ = [
    "Info",
    "Kind",
    "NativeSnapshotter",
    "OverlaySnapshotter",
    "Snapshotter",
    "Usage",
    "supported",
]
