"""Mounted root filesystems from snapshots, and the other small kernel-facing steps the pod
controllers share. Blocking: call through ``asyncio.to_thread``."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from runtime import mount as mounts
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from runtime.model.pods import IdMappings, UserNamespace
from runtime.mount import idmap
from runtime.sandbox import namespaces as nsmod
from runtime.sandbox import userns as userns_mod
from runtime.snapshots.interfaces import Snapshotter


def mount_rootfs(snapshot_mounts: Sequence[mounts.Mount], target: Path) -> None:
    """Mount a snapshot's mounts at ``target`` (created if needed)."""
    target.mkdir(parents=True, exist_ok=True)
    mounts.mount_all(snapshot_mounts, target)


def mount_rootfs_idmapped(
    snapshot_mounts: Sequence[mounts.Mount], target: Path, *, userns: Path, root: tuple[int, int]
) -> None:
    """Mount a snapshot's overlay at ``target`` (created if needed) with its layers id-mapped
    through the pod's user namespace (``runtime.mount.idmap``); FailedPrecondition for a
    snapshot that is not one overlay (an image without layers, the native snapshotter)."""
    if len(snapshot_mounts) != 1 or snapshot_mounts[0].type != "overlay":
        raise FailedPrecondition(
            "a pod in its own user namespace needs the overlay snapshotter and images with "
            "at least one layer"
        )
    target.mkdir(parents=True, exist_ok=True)
    idmap.mount_idmapped_overlay(snapshot_mounts[0], target, userns=userns, root=root)


def bind_idmapped(
    source: Path,
    target: Path,
    *,
    userns: Path | IdMappings,
    read_only: bool,
    propagation: str = "rprivate",
) -> None:
    """Attach at ``target`` (created: a directory, or an empty file for a file) an id-mapped
    copy of the mount tree at ``source`` through the user namespace pinned at ``userns`` (the
    pod's), or through one made for the ``(uids, gids)`` mappings given instead: with the
    pod's, files the host's root owns appear as the pod's root's. ``propagation``
    (``rprivate``, ``rslave`` or ``rshared``) is set on the copy: a copy of a shared mount is
    its peer, so ``rslave`` lets mounts made below ``source`` later reach it (and the
    container's bind of it), ``rprivate`` cuts it off. InvalidArgument when ``source`` does
    not exist or the kernel refuses the mappings; FailedPrecondition when its file system
    cannot be id-mapped."""
    try:
        is_dir = source.is_dir()
        if not is_dir and not source.exists():
            raise FileNotFoundError(source)
    except OSError:
        raise InvalidArgument(f"mount source {source} does not exist") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        target.mkdir(exist_ok=True)
    else:
        target.touch(exist_ok=True)
    try:
        # the top mount only, as runc's `idmap` for containerd's mounts: a mount below the
        # volume is the node's, seen as it is (its host-root files stay unwritable)
        with contextlib.ExitStack() as stack:
            through = (
                userns
                if isinstance(userns, Path)
                else stack.enter_context(userns_mod.transient_user_namespace(*userns))
            )
            idmap.idmapped_clone(source, target, through, read_only=read_only, recursive=False)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            target.rmdir() if is_dir else target.unlink()
        if not isinstance(exc, OSError):
            raise
        raise FailedPrecondition(
            f"cannot id-map {source}: {exc.strerror or exc}"
            " (its file system may not support id-mapped mounts)"
        ) from None
    try:
        mounts.set_propagation(target, propagation)
    except BaseException:
        mounts.unmount(target, detach=True, missing_ok=True)
        raise


def check_traversable(path: Path) -> None:
    """FailedPrecondition unless every directory above ``path`` lets others search it: a pod
    in its own user namespace is "others" to the node, and runc mounts its root file system
    (and its volumes) from inside that namespace, so it must reach them by path."""
    for parent in path.parents:
        try:
            mode = os.stat(parent).st_mode
        except FileNotFoundError:
            continue  # made later by pinnace, searchable (0755)
        if not mode & 0o001:
            raise FailedPrecondition(
                f"{parent} is not searchable by others (mode {oct(mode & 0o777)}): pods in "
                "their own user namespace need every directory above the state directory "
                "searchable (chmod o+x)"
            )


def give_to(paths: Sequence[Path], root: tuple[int, int]) -> None:
    """Hand pinnace-made pod files (hostname, hosts, resolv.conf, the /dev/shm tmpfs) to a
    user namespace's root, so the pod's root owns them as it would on the node."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, *root)


def unmount_quietly(target: Path) -> None:
    """Unmount whatever is mounted at ``target``; a missing target is fine. A mount that
    has mounts below it (the node's, propagated into an id-mapped volume) is busy: then
    everything at and below ``target`` is detached, deepest first."""
    if not target.exists():
        return
    try:
        mounts.unmount_all(target)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        mounts.unmount_below(target)


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

    def mount_idmapped(
        self, mounts: Sequence[mounts.Mount], target: Path, *, userns: Path, root: tuple[int, int]
    ) -> None:
        mount_rootfs_idmapped(mounts, target, userns=userns, root=root)

    def bind_idmapped(
        self,
        source: Path,
        target: Path,
        *,
        userns: Path | IdMappings,
        read_only: bool,
        propagation: str = "rprivate",
    ) -> None:
        bind_idmapped(source, target, userns=userns, read_only=read_only, propagation=propagation)


class HostDirs:
    """:class:`runtime.pods.interfaces.BundleDirs` on this host's file system."""

    def make(self, path: Path, *, exist_ok: bool = False) -> None:
        path.mkdir(parents=True, exist_ok=exist_ok)

    def remove(self, path: Path) -> None:
        if not path.exists():
            return
        # nothing mounted below survives into the rmtree (a crash-left id-mapped volume is a
        # read-write view of the host's files)
        with contextlib.suppress(OSError):
            mounts.unmount_below(path)
        shutil.rmtree(path, ignore_errors=True)


class HostNamespaces:
    """:class:`runtime.pods.interfaces.PodNamespaces` on this host (``runtime.sandbox``)."""

    async def pin(
        self, directory: Path, *, kinds: frozenset[nsmod.NamespaceKind], hostname: str | None
    ) -> nsmod.PinnedNamespaces:
        return await nsmod.pin_namespaces(directory, kinds=kinds, hostname=hostname)

    async def pin_user(
        self,
        directory: Path,
        *,
        kinds: frozenset[nsmod.NamespaceKind],
        hostname: str | None,
        userns: UserNamespace,
    ) -> tuple[Path, nsmod.PinnedNamespaces]:
        return await userns_mod.pin_user_namespaces(
            directory, kinds=kinds, userns=userns, hostname=hostname
        )

    async def unpin(self, directory: Path) -> None:
        await nsmod.unpin(directory)

    def pinned_among(self, paths: Iterable[Path]) -> set[Path]:
        return nsmod.pinned_among(paths)

    async def sysctls(
        self, namespaces: Mapping[nsmod.NamespaceKind, Path], values: Mapping[str, str]
    ) -> None:
        await nsmod.sysctls(namespaces, values)
