"""The ``mounts`` of a container's spec: the defaults, then the sandbox's files, then the
caller's bind mounts, and the rootfs propagation those ask for (containerd's rules).

Terms:

sandbox files
    Files the sandbox prepared for all its containers: ``/etc/hostname``, ``/etc/hosts``,
    ``/etc/resolv.conf`` and the pod's ``/dev/shm``. A caller mount at the same place wins.
override
    A mount whose destination equals a default mount's replaces it; a mount of ``/dev``
    replaces every default mount under ``/dev`` too.
ordering
    Caller and sandbox mounts are sorted (stably) by how many components their destination
    has, so a parent directory is mounted before anything inside it.
read-only binds
    Every bind is recursive (``rbind``), so mounts below the source stay visible in the
    container. ``ro`` makes only the top mount read-only; a CRI ``recursive_read_only``
    mount adds ``rro`` (mount_setattr on the whole tree), which the OCI runtime must state
    it supports, and which the CRI allows only with ``readonly`` and private propagation.
"""

from __future__ import annotations

import os.path
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument
from runtime.model.pods import Mount, Propagation
from runtime.oci import defaults


@dataclass(frozen=True, slots=True)
class SandboxFiles:
    """Files a sandbox prepared for its containers; None means not prepared (not mounted).
    ``shm`` is the pod's /dev/shm (a tmpfs the sandbox mounted, or the host's /dev/shm
    for a pod in the node's IPC namespace)."""

    hostname: Path | None = None
    hosts: Path | None = None
    resolv_conf: Path | None = None
    shm: Path | None = None


def sandbox_mounts(files: SandboxFiles, *, readonly_rootfs: bool) -> list[Mount]:
    """The sandbox files as bind mounts. Like containerd, the /etc files are read-only only
    when the container's rootfs is, and /dev/shm is always writable."""
    out = []
    for dest, src in (
        ("/etc/hostname", files.hostname),
        ("/etc/hosts", files.hosts),
        ("/etc/resolv.conf", files.resolv_conf),
    ):
        if src is not None:
            out.append(Mount(container_path=dest, host_path=str(src), readonly=readonly_rootfs))
    if files.shm is not None:
        out.append(Mount(container_path=defaults.DEV_SHM, host_path=str(files.shm)))
    return out


def build_mounts(
    config_mounts: Sequence[Mount],
    extra: Sequence[Mount],
    *,
    privileged: bool = False,
    recursive_read_only: bool = False,
) -> tuple[list[dict[str, Any]], str]:
    """The spec's mounts and its ``linux.rootfsPropagation`` ("" for runc's default,
    rprivate). ``recursive_read_only``: the OCI runtime supports ``rro``. InvalidArgument for
    relative paths and for recursive read-only mounts the rules refuse."""
    for m in config_mounts:
        _validate(m, rro_supported=recursive_read_only)
    wanted = {_clean(m.container_path) for m in config_mounts}
    merged = list(config_mounts) + [m for m in extra if _clean(m.container_path) not in wanted]
    merged.sort(key=lambda m: _clean(m.container_path).count("/"))

    taken = {_clean(m.container_path) for m in merged}
    out: list[dict[str, Any]] = []
    for d in defaults.default_mounts():
        dest = d["destination"]
        if dest in taken or ("/dev" in taken and dest.startswith("/dev/")):
            continue
        if privileged and d["type"] in ("sysfs", "cgroup"):
            d["options"] = ["rw" if o == "ro" else o for o in d["options"]]
        out.append(d)

    propagation = ""
    for m in merged:
        options = ["rbind"]
        if m.propagation is Propagation.BIDIRECTIONAL:
            options.append("rshared")
            propagation = "rshared"
        elif m.propagation is Propagation.HOST_TO_CONTAINER:
            options.append("rslave")
            if propagation != "rshared":
                propagation = "rslave"
        else:
            options.append("rprivate")
        options.append("ro" if m.readonly else "rw")
        if m.recursive_read_only:
            options.append("rro")
        out.append(
            {
                "destination": m.container_path,
                "type": "bind",
                "source": m.host_path,
                "options": options,
            }
        )
    return out, propagation


def _validate(m: Mount, *, rro_supported: bool) -> None:
    if not m.host_path.startswith("/"):
        raise InvalidArgument(f"mount host path {m.host_path!r} must be absolute")
    if not m.container_path.startswith("/"):
        raise InvalidArgument(f"mount container path {m.container_path!r} must be absolute")
    if not m.recursive_read_only:
        return
    where = f"mount {m.host_path!r} at {m.container_path!r}"
    if not m.readonly:
        raise InvalidArgument(f"{where}: recursive_read_only needs readonly: true")
    if m.propagation is not Propagation.PRIVATE:
        raise InvalidArgument(
            f"{where}: recursive_read_only needs PROPAGATION_PRIVATE, not "
            f"{m.propagation.name} (a read-only tree cannot receive or send mounts)"
        )
    if not rro_supported:
        # The kubelet asks only where Status reported recursive_read_only_mounts.
        raise InvalidArgument(
            f"{where}: recursive read-only mounts are not supported by this runtime handler "
            "(its OCI runtime's `features` lists no rro)"
        )


def _clean(path: str) -> str:
    return os.path.normpath(path) if path else path
