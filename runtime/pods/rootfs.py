"""Mounted root filesystems from snapshots, and the other small kernel-facing steps the pod
controllers share. Blocking: call through ``asyncio.to_thread``."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from runtime import mount as mounts
from runtime.errors import FailedPrecondition, NotFound
from runtime.sandbox import namespaces as nsmod
from runtime.snapshots.interfaces import Snapshotter


def mount_rootfs(snapshot_mounts: Sequence[mounts.Mount], target: Path) -> None:
    """Mount a snapshot's mounts at ``target`` (created if needed)."""
    target.mkdir(parents=True, exist_ok=True)
    mounts.mount_all(snapshot_mounts, target)


def unmount_quietly(target: Path) -> None:
    """Unmount whatever is mounted at ``target``; a missing target is fine."""
    if target.exists():
        mounts.unmount_all(target)


def remove_snapshot(sn: Snapshotter, key: str) -> None:
    """Remove snapshot ``key`` if it exists."""
    with contextlib.suppress(NotFound, FailedPrecondition):
        sn.remove(key)


def own_oom_score_adj() -> int:
    """This process's oom_score_adj: without CAP_SYS_RESOURCE no task may be given less."""
    try:
        return int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        return 0


class HostRootfs:
    """:class:`runtime.pods.interfaces.RootfsMounts` on this host (mount(2) and umount2(2))."""

    def mount(self, mounts: Sequence[mounts.Mount], target: Path) -> None:
        mount_rootfs(mounts, target)

    def unmount(self, target: Path) -> None:
        unmount_quietly(target)


class HostDirs:
    """:class:`runtime.pods.interfaces.BundleDirs` on this host's file system."""

    def make(self, path: Path, *, exist_ok: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=exist_ok)

    def remove(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)


class HostNamespaces:
    """:class:`runtime.pods.interfaces.PodNamespaces` on this host (``runtime.sandbox``)."""

    async def pin(
        self, directory: Path, *, kinds: frozenset[nsmod.NamespaceKind], hostname: str | None
    ) -> nsmod.PinnedNamespaces:
        return await nsmod.pin_namespaces(directory, kinds=kinds, hostname=hostname)

    async def unpin(self, directory: Path) -> None:
        await nsmod.unpin(directory)

    def is_pinned(self, path: Path) -> bool:
        return nsmod.is_pinned(path)

    async def sysctls(
        self, namespaces: Mapping[nsmod.NamespaceKind, Path], values: Mapping[str, str]
    ) -> None:
        await nsmod.sysctls(namespaces, values)
