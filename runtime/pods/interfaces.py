"""The seams of the pod layer: what the sandbox and container controllers need from below them,
as small Protocols, so that they can be driven in unit tests with fakes (the fakes ship in
``tests/support/``) and in the daemon with the real thing.

- **tasks**: :class:`runtime.tasks.interfaces.TaskService` (runc + conmon in the daemon,
  ``tests.support.tasks.FakeTaskService`` in tests).
- **rootfs mounts** (:class:`RootfsMounts`): mounting a snapshot's mounts as a container's (or
  the infra container's) root filesystem, and unmounting it.
- **bundle directories** (:class:`BundleDirs`): creating and removing the per-sandbox and
  per-container directories under the state dir.
- **pod namespaces** (:class:`PodNamespaces`): pinning a pod's net/ipc/uts namespaces as
  files, unpinning them, checking a pin, namespaced sysctls.
- **images** (:class:`ImageSource`): the image records a pod needs (the container's image, the
  sandbox image, pulled when missing).

The blocking methods are called through ``asyncio.to_thread`` by the controllers; an
implementation never needs to care which thread it runs on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from runtime.images.store import ImageRecord
from runtime.model.pods import IdMappings, UserNamespace
from runtime.mount.types import Mount
from runtime.sandbox.namespaces import NamespaceKind, PinnedNamespaces
from runtime.tasks.interfaces import TaskService

__all__ = ["BundleDirs", "ImageSource", "PodNamespaces", "RootfsMounts", "TaskService"]


class RootfsMounts(Protocol):
    """Root filesystems from snapshot mounts. Blocking."""

    def mount(self, mounts: Sequence[Mount], target: Path) -> None:
        """Mount ``mounts`` at ``target`` (created if needed)."""
        ...

    def unmount(self, target: Path) -> None:
        """Unmount whatever is mounted at ``target``; a missing target is fine."""
        ...

    def mount_idmapped(
        self, mounts: Sequence[Mount], target: Path, *, userns: Path, root: tuple[int, int]
    ) -> None:
        """Mount a snapshot (an overlay) at ``target`` with its lower layers id-mapped
        through the user namespace pinned at ``userns``; upper and work given to ``root``."""
        ...

    def bind_idmapped(
        self,
        source: Path,
        target: Path,
        *,
        userns: Path | IdMappings,
        read_only: bool,
        propagation: str = "rprivate",
    ) -> None:
        """Attach at ``target`` (created) an id-mapped copy of ``source`` (a host directory
        or file, with what is mounted below it) through the user namespace pinned at
        ``userns``, or one made for the ``(uids, gids)`` mappings given instead; read-only or
        not as asked, its propagation ``rprivate``, ``rslave`` (mounts made below ``source``
        later reach it) or ``rshared``. Undone by ``unmount(target)``."""
        ...


class BundleDirs(Protocol):
    """Per-sandbox and per-container directories. Blocking."""

    def make(self, path: Path, *, exist_ok: bool = False) -> None:
        """Create ``path`` and its parents; FileExistsError when it exists and not ``exist_ok``."""
        ...

    def remove(self, path: Path) -> None:
        """Remove ``path`` and everything under it; a missing path is fine."""
        ...


class PodNamespaces(Protocol):
    """A pod's own namespaces, kept alive as bind-mounted files (``runtime.sandbox``)."""

    async def pin(
        self, directory: Path, *, kinds: frozenset[NamespaceKind], hostname: str | None
    ) -> PinnedNamespaces:
        """New namespaces of ``kinds`` pinned as files in ``directory``."""
        ...

    async def pin_user(
        self,
        directory: Path,
        *,
        kinds: frozenset[NamespaceKind],
        hostname: str | None,
        userns: UserNamespace,
    ) -> tuple[Path, PinnedNamespaces]:
        """A new user namespace with ``userns``' mappings and new namespaces of ``kinds``
        owned by it, all pinned in ``directory``: the user namespace's file and the others."""
        ...

    async def unpin(self, directory: Path) -> None:
        """Unpin whatever is pinned in ``directory``; idempotent."""
        ...

    def pinned_among(self, paths: Iterable[Path]) -> set[Path]:
        """Those of ``paths`` that still pin a namespace (checked together: a restart asks
        for every pod's at once). Blocking."""
        ...

    async def sysctls(
        self, namespaces: Mapping[NamespaceKind, Path], values: Mapping[str, str]
    ) -> None:
        """Write namespaced sysctls inside the pinned namespaces."""
        ...


class ImageSource(Protocol):
    """The images pods run from (list and status never wait on it: all reads are in memory)."""

    def find(self, text: str) -> ImageRecord | None:
        """The image a name, id or digest reference names, if the node has it."""
        ...

    def lookup(self, image_id: str) -> ImageRecord | None:
        """The image with this id (config digest), if the node still has it."""
        ...

    async def pull(self, text: str) -> ImageRecord:
        """Pull ``text`` (the sandbox image, when it is missing)."""
        ...
