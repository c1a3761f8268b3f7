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
    The mappings must be the pod's (one user namespace per pod, pinned); a mount with
    mappings in a pod without a user namespace, or with bidirectional propagation (only for
    privileged containers, which such a pod cannot have), is InvalidArgument naming the
    mount. Host-to-container propagation works: the copy of a shared mount is its peer,
    made a slave, so mounts made on the node below ``host_path`` later appear inside.
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
from runtime.model.pods import IdMapping, Mount, Propagation, UserNamespace
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
        if userns is None:
            raise InvalidArgument(
                f"{where}: uidMappings/gidMappings need a pod in its own user namespace "
                "(userns_options mode POD); this pod uses the node's"
            )
        if m.uid_mappings != userns.uids or m.gid_mappings != userns.gids:
            raise InvalidArgument(
                f"{where}: its mappings (uids {_shown(m.uid_mappings)}, gids "
                f"{_shown(m.gid_mappings)}) are not the pod's user namespace's (uids "
                f"{_shown(userns.uids)}, gids {_shown(userns.gids)}); a mount is id-mapped "
                "through the pod's own user namespace only"
            )
        if m.propagation is Propagation.BIDIRECTIONAL and not m.image:
            raise InvalidArgument(
                f"{where}: an id-mapped mount cannot be PROPAGATION_BIDIRECTIONAL (mounts "
                "the pod's root makes would reach the node as host root's); the kubelet "
                "allows it only for privileged containers, which a pod in its own user "
                "namespace cannot have"
            )


def mount_volumes(
    rootfs: RootfsMounts, mounts: Sequence[Mount], *, directory: Path, userns: Path
) -> tuple[Mount, ...]:
    """Id-map each bind mount of ``mounts`` that asks for it under ``directory/idmapped``
    and return the mounts the spec needs (those binds pointed at the id-mapped copies, their
    mappings dropped: runc binds an id-mapped mount as it is). The caller undoes a failure
    with :func:`unmount_volumes`."""
    out = list(mounts)
    for index, m in enumerate(mounts):
        if not m.idmapped or m.image:
            continue
        target = directory / DIRECTORY / str(index)
        propagation = "rslave" if m.propagation is Propagation.HOST_TO_CONTAINER else "rprivate"
        rootfs.bind_idmapped(
            Path(m.host_path),
            target,
            userns=userns,
            read_only=m.readonly,
            propagation=propagation,
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
