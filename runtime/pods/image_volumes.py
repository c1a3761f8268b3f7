"""Image volumes (CRI ``Mount.image``): an image's filesystem mounted read-only into a
container.

For the container's ``n``-th mount naming an image, a read-only *view* snapshot of the
image's top layer (``container-<id>-image-<n>``) is mounted at
``<container dir>/image-volumes/<n>``, and the spec binds that directory (or its
``image_sub_path`` subdirectory, resolved inside the image as the container would see it,
symlinks included) read-only at the container path. Nothing is ``noexec``: programs in the
image run.

In a pod with its own user namespace the view is id-mapped through it (read-only layers, as
containerd's snapshotter does for an image volume whose mount carries the pod's mappings), so
the image's root-owned files are the pod's root's inside.

The view snapshot stands on the image's committed chain, so image garbage collection keeps
every layer the volume uses for as long as the container exists (even if the image record is
removed meanwhile). Removal unmounts the views and removes their snapshots; a leftover
container directory after a crash is cleaned the same way, its snapshots found by key.

Blocking functions: call them on a thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from runtime.diff.paths import Missing, Tree, normalize
from runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from runtime.model.pods import Mount
from runtime.pods.interfaces import RootfsMounts
from runtime.snapshots.interfaces import Snapshotter

DIRECTORY = "image-volumes"


def snapshot_key(container_id: str, index: int) -> str:
    return f"container-{container_id}-image-{index}"


def mount_volume(
    sn: Snapshotter,
    rootfs: RootfsMounts,
    *,
    container_id: str,
    index: int,
    chain_id: str,
    directory: Path,
    mount: Mount,
    userns: Path | None = None,
) -> Mount:
    """Mount the image of ``mount`` (the container's ``index``-th) and return the bind mount
    the spec needs. ``userns``: the pod's user namespace file, through which the view is
    id-mapped (its layers, read-only) so that the image's files appear owned as in the image.
    InvalidArgument names a missing ``image_sub_path``; on any failure nothing of this volume
    is left."""
    key = snapshot_key(container_id, index)
    target = directory / DIRECTORY / str(index)
    mounts = sn.view(key, chain_id)
    try:
        if userns is None:
            rootfs.mount(mounts, target)
        elif len(mounts) == 1 and mounts[0].type == "bind":  # a one-layer view
            rootfs.bind_idmapped(Path(mounts[0].source), target, userns=userns, read_only=True)
        else:  # an overlay of lower layers only: read-only by construction
            rootfs.mount_idmapped(mounts, target, userns=userns, root=(0, 0))
        source = str(target)
        if mount.image_sub_path:
            try:
                source = Tree(source).directory(normalize(mount.image_sub_path), create=False)
            except Missing:
                raise InvalidArgument(
                    f"image volume {mount.image} at {mount.container_path}: image_sub_path "
                    f"{mount.image_sub_path!r} is not a directory in the image"
                ) from None
    except BaseException:
        rootfs.unmount(target)
        with contextlib.suppress(NotFound, FailedPrecondition):
            sn.remove(key)
        raise
    # the kubelet's mappings are served by the id-mapped view; the bind of it is plain
    return dataclasses.replace(
        mount, host_path=source, image="", image_sub_path="", uid_mappings=(), gid_mappings=()
    )


def unmount_volumes(
    sn: Snapshotter, rootfs: RootfsMounts, *, container_id: str, directory: Path, count: int
) -> None:
    """Unmount and remove the image volumes of a container (``count``: how many of its
    mounts there are, so every key it may have used is tried). Absent ones are fine."""
    base = directory / DIRECTORY
    if base.is_dir():
        for mountpoint in base.iterdir():
            rootfs.unmount(mountpoint)
    keys = {snapshot_key(container_id, n) for n in range(count)}
    prefix = snapshot_key(container_id, 0)[:-1]
    if count < 0:  # unknown (a leftover directory): find its keys among the snapshots
        keys = {info.key for info in sn.walk() if info.key.startswith(prefix)}
    for key in keys:
        with contextlib.suppress(NotFound, FailedPrecondition):
            sn.remove(key)


def image_mounts(mounts: Sequence[Mount]) -> list[tuple[int, Mount]]:
    """The container's mounts that are image volumes, with their index."""
    return [(n, m) for n, m in enumerate(mounts) if m.image]
