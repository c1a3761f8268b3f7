"""Id-mapped volumes of a container in a pod with its own user namespace.

What containerd 2.x does, and so pinnace: the kubelet sets ``uidMappings``/``gidMappings`` (the
pod's own mappings) on every CRI ``Mount`` of a container whose pod has ``hostUsers: false``
(emptyDir, configMap, secret, projected, hostPath: binds of kubelet-made host directories that
the kubelet does not chown for such pods). containerd hands exactly those mounts to the OCI
runtime as id-mapped binds; a mount without mappings stays a plain bind. runc 1.1.5 cannot
make id-mapped mounts, so pinnace makes them itself before runc sees a path:

id-mapped volume
    ``open_tree(host_path, OPEN_TREE_CLONE | AT_RECURSIVE)`` + ``mount_setattr(MOUNT_ATTR_IDMAP)``
    with the pod's user-namespace file + ``move_mount`` onto ``<container dir>/idmapped/<n>``
    (read-only too when the mount is), and the spec binds that instead of ``host_path``. The
    mounts below ``host_path`` come along (as ``rbind``) but only the top one is id-mapped and
    made read-only: runc's ``idmap`` (not ``ridmap``) for the mounts containerd hands it, and
    ``ro`` without ``rro`` is the top mount only.
    Through it, a file the host's uid ``k`` owns appears owned by ``k`` inside the container
    (host root as the pod's root), and what the pod's root writes lands as the host's root:
    the mapping says "this pod is root of these files", which is why the kubelet sets it only
    for the pod's own volumes. A mount the caller did not ask to id-map is not: host root's
    files there appear as ``nobody`` and stay unwritable to the pod.
rules
    A mount with the pod's mappings (what the kubelet sends) is mapped through the pod's
    pinned user namespace; one with other mappings, or in a pod without a user namespace,
    through a short-lived user namespace made for its own mappings, as runc does for the
    mappings containerd hands it. Refused (InvalidArgument naming the mount): bidirectional
    propagation in a pod with its own user namespace (only for privileged containers, which
    such a pod cannot have), and an image volume with mappings other than its pod's (it is
    id-mapped through the pod's namespace as a read-only view). Host-to-container
    propagation works: the copy of a shared mount is its peer, made a slave, so mounts made
    on the node below ``host_path`` later appear inside.
cleanup
    Removal (and the undo of a failed create) detaches every mount below ``idmapped/``; a
    crash leaves them attached under the container directory, where the recovery sweep of
    leftover directories finds them, and ``HostDirs.remove`` detaches whatever is still
    mounted below a directory before removing it (``rmtree`` through a read-write view would
    delete the host's files).

Blocking functions: call them on a thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from runtime.errors import InvalidArgument
from runtime.model.pods import IdMapping, IdMappings, Mount, Propagation, UserNamespace
from runtime.pods.interfaces import RootfsMounts

DIRECTORY = "idmapped"


def _shown(mappings: Sequence[IdMapping]) -> str:
    return ",".join(f"{m.container_id}:{m.host_id}:{m.length}" for m in mappings) or "none"


def check(mounts: Sequence[Mount], userns: UserNamespace | None) -> None:
    """InvalidArgument for an id-mapped mount the pod cannot have (see the module's rules)."""
    for i, m in enumerate(mounts):
        if not m.idmapped:
            continue
        where = f"mounts[{i}] ({m.image or m.host_path} at {m.container_path})"
        pods = userns is not None and (m.uid_mappings, m.gid_mappings) == (userns.uids, userns.gids)
        if m.image and not pods:
            shown = "none" if userns is None else f"uids {_shown(userns.uids)}"
            raise InvalidArgument(
                f"{where}: an image volume is id-mapped through its pod's user namespace "
                f"only; its mappings (uids {_shown(m.uid_mappings)}, gids "
                f"{_shown(m.gid_mappings)}) are not the pod's ({shown})"
            )
        if userns is not None and m.propagation is Propagation.BIDIRECTIONAL:
            raise InvalidArgument(
                f"{where}: an id-mapped mount of a pod in its own user namespace cannot be "
                "PROPAGATION_BIDIRECTIONAL (mounts the pod's root makes would reach the node "
                "as host root's); the kubelet allows it only for privileged containers, "
                "which such a pod cannot have"
            )


_PROPAGATION = {
    Propagation.PRIVATE: "rprivate",
    Propagation.HOST_TO_CONTAINER: "rslave",
    Propagation.BIDIRECTIONAL: "rshared",
}


def mount_volumes(
    rootfs: RootfsMounts,
    mounts: Sequence[Mount],
    *,
    directory: Path,
    pod: tuple[Path, UserNamespace] | None,
) -> tuple[Mount, ...]:
    """Id-map each bind mount of ``mounts`` that asks for it under ``directory/idmapped``
    and return the mounts the spec needs (those binds pointed at the id-mapped copies, their
    mappings dropped: runc binds an id-mapped mount as it is). ``pod``: the pod's pinned
    user-namespace file and its mappings; a mount with those is mapped through it, any other
    through a user namespace made for its own mappings (as runc does for the mappings it is
    given). The caller undoes a failure with :func:`unmount_volumes`."""
    out = list(mounts)
    for index, m in enumerate(mounts):
        if not m.idmapped or m.image:
            continue
        own: IdMappings = (m.uid_mappings, m.gid_mappings)
        through: Path | IdMappings = own
        if pod is not None and own == (pod[1].uids, pod[1].gids):
            through = pod[0]
        target = directory / DIRECTORY / str(index)
        rootfs.bind_idmapped(
            Path(m.host_path),
            target,
            userns=through,
            read_only=m.readonly,
            propagation=_PROPAGATION[m.propagation],
        )
        out[index] = dataclasses.replace(m, host_path=str(target), uid_mappings=(), gid_mappings=())
    return tuple(out)


def unmount_volumes(rootfs: RootfsMounts, *, directory: Path) -> None:
    """Detach the id-mapped volumes under ``directory`` and remove their mount points.
    Absent ones are fine."""
    base = directory / DIRECTORY
    if not base.is_dir():
        return
    for point in base.iterdir():
        rootfs.unmount(point)
        with contextlib.suppress(OSError):
            if point.is_dir():
                point.rmdir()
            else:
                point.unlink()
    with contextlib.suppress(OSError):
        base.rmdir()
