"""The pod layer built for unit tests: real controllers, store (sqlite in a temp dir), exchange
and native snapshotter, with fakes at the seams that touch the kernel or run processes
(:mod:`runtime.pods.interfaces`): :class:`tests.support.tasks.FakeTaskService`,
:class:`FakeRootfs`, :class:`FakeDirs` (real directories, failures on demand) and
:class:`FakeImages`.

    layer = PodLayer.build(tmp_path)             # one busybox-like image, committed snapshot
    sandbox = await layer.sandboxes.run(layer.host_pod("web"))
    container = await layer.containers.create(sandbox.id, layer.container("app"))
    ...
    layer.close()

Pods built by :meth:`PodLayer.host_pod` use the node's network, IPC and PID namespaces, so no
namespace is pinned and no tmpfs mounted: what a unit test can run without root.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.cgroups.mounts import CgroupMounts
from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.events.types import Envelope, Event
from runtime.images.manifest import chain_ids, compute_digest
from runtime.images.store import ImageRecord
from runtime.metadata.db import Database
from runtime.model.network import IPConfig
from runtime.model.pods import (
    ContainerConfig,
    IdMappings,
    NamespaceMode,
    NamespaceOptions,
    PodMetadata,
    SandboxConfig,
    SecurityContext,
    UserNamespace,
)
from runtime.mount.types import Mount
from runtime.pods.containers import ContainerController
from runtime.pods.hooks import PodHooks
from runtime.pods.network import EventNetwork
from runtime.pods.rootfs import HostDirs
from runtime.pods.sandboxes import SandboxController
from runtime.pods.service import PodService
from runtime.pods.settings import PodSettings
from runtime.pods.store import PodStore
from runtime.sandbox.namespaces import NamespaceKind, PinnedNamespaces
from runtime.snapshots.native import NativeSnapshotter
from tests.support.tasks import FakeTaskService

__all__ = [
    "FakeDirs",
    "FakeImages",
    "FakeNamespaces",
    "FakeNetworkManager",
    "FakeRootfs",
    "PodLayer",
    "RecordingExchange",
]

IMAGE_NAME = "example.test/busybox:1.0"
SANDBOX_IMAGE = "example.test/pause:1.0"


class RecordingExchange(Exchange):
    """The real exchange, remembering every event published through it."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[Event] = []

    def publish(self, namespace: str, event: Event) -> Envelope:
        envelope = super().publish(namespace, event)
        self.published.append(event)
        return envelope


class FakeRootfs:
    """:class:`runtime.pods.interfaces.RootfsMounts` that mounts nothing: it creates the
    target (as the real one does) and remembers what would be mounted there."""

    def __init__(self) -> None:
        self.mounted: dict[Path, tuple[Mount, ...]] = {}
        self.idmapped: dict[Path, tuple[Path, tuple[int, int]]] = {}
        # what each id-mapped bind was mapped through: a pinned namespace or its own mappings
        self.mappings: dict[Path, Path | IdMappings] = {}
        self.fail_next: BaseException | None = None

    def mount(self, mounts: Sequence[Mount], target: Path) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        target.mkdir(parents=True, exist_ok=True)
        self.mounted[target] = tuple(mounts)

    def unmount(self, target: Path) -> None:
        self.mounted.pop(target, None)

    def mount_idmapped(
        self, mounts: Sequence[Mount], target: Path, *, userns: Path, root: tuple[int, int]
    ) -> None:
        self.mount(mounts, target)
        self.idmapped[target] = (userns, root)

    def bind_idmapped(
        self,
        source: Path,
        target: Path,
        *,
        userns: Path | IdMappings,
        read_only: bool,
        propagation: str = "rprivate",
    ) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir(exist_ok=True)
        mode = "ro" if read_only else "rw"
        self.mounted[target] = (Mount("bind", str(source), ("rbind", mode, propagation)),)
        self.idmapped[target] = (userns if isinstance(userns, Path) else Path("-"), (-1, -1))
        self.mappings[target] = userns


class FakeNamespaces:
    """:class:`runtime.pods.interfaces.PodNamespaces` without the kernel: a "pin" is an empty
    file per namespace kind in the directory, and stays pinned until unpinned (or until a
    test takes it away with ``break_pin``)."""

    def __init__(self) -> None:
        self.pinned: set[Path] = set()
        self.sysctls_written: dict[str, str] = {}
        self.fail_next: BaseException | None = None

    async def pin(
        self, directory: Path, *, kinds: frozenset[NamespaceKind], hostname: str | None
    ) -> PinnedNamespaces:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return self._pin(directory, kinds)

    def _pin(self, directory: Path, kinds: frozenset[NamespaceKind]) -> PinnedNamespaces:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for kind in sorted(kinds, key=lambda k: k.value):
            path = directory / kind.value
            path.touch()
            self.pinned.add(path)
            paths[kind] = path
        return PinnedNamespaces(directory=directory, paths=paths)

    async def pin_user(
        self,
        directory: Path,
        *,
        kinds: frozenset[NamespaceKind],
        hostname: str | None,
        userns: UserNamespace,
    ) -> tuple[Path, PinnedNamespaces]:
        pinned = await self.pin(directory, kinds=kinds, hostname=hostname)
        user = directory / "user"
        user.touch()
        self.pinned.add(user)
        return user, pinned

    async def unpin(self, directory: Path) -> None:
        self._unpin(directory)

    def _unpin(self, directory: Path) -> None:
        for path in [p for p in self.pinned if p.parent == directory]:
            self.pinned.discard(path)
            path.unlink(missing_ok=True)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()

    def is_pinned(self, path: Path) -> bool:
        return path in self.pinned

    def pinned_among(self, paths: Iterable[Path]) -> set[Path]:
        return {p for p in paths if p in self.pinned}

    def break_pin(self, path: Path) -> None:
        self.pinned.discard(path)

    async def sysctls(
        self, namespaces: Mapping[NamespaceKind, Path], values: Mapping[str, str]
    ) -> None:
        self.sysctls_written.update(values)


class FakeNetworkManager:
    """The network manager's side of the exchange protocol, without CNI: it answers
    ``/sandboxes/netns-created`` with ``/network/attached`` (an address from 10.88.0.0/16) or,
    when ``fail_next_add`` is set, ``/network/failed``; and ``/sandboxes/netns-removing`` with
    ``/network/detached``. Run it as an async context manager."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._task: asyncio.Task[None] | None = None
        self.fail_next_add: str | None = None
        self.attached: set[str] = set()
        self._next = 2

    async def __aenter__(self) -> FakeNetworkManager:
        subscription = self._exchange.subscribe('topic~="^/sandboxes/netns-"')
        self._task = asyncio.ensure_future(self._serve(subscription))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _serve(self, subscription: Any) -> None:
        async with subscription:
            async for envelope in subscription:
                event = envelope.event
                if isinstance(event, ev.SandboxNetnsCreated):
                    if self.fail_next_add is not None:
                        message, self.fail_next_add = self.fail_next_add, None
                        answer: ev.Event = ev.NetworkFailed(
                            sandbox_id=event.sandbox_id, message=message, op=ev.NetworkOp.ADD
                        )
                    else:
                        self.attached.add(event.sandbox_id)
                        address = f"10.88.0.{self._next}/16"
                        self._next += 1
                        answer = ev.NetworkAttached(
                            sandbox_id=event.sandbox_id, ips=(IPConfig(address=address),)
                        )
                else:
                    self.attached.discard(event.sandbox_id)
                    answer = ev.NetworkDetached(sandbox_id=event.sandbox_id)
                self._exchange.publish(envelope.namespace, answer)


class FakeDirs(HostDirs):
    """Real directories, with a failure on demand for the next ``make``."""

    def __init__(self) -> None:
        self.fail_next: BaseException | None = None

    def make(self, path: Path, *, exist_ok: bool = False) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        super().make(path, exist_ok=exist_ok)


class FakeImages:
    """:class:`runtime.pods.interfaces.ImageSource` over a dict of records by name; ``pull``
    moves a record from ``pullable`` into the node's images (or raises ``pull_error``)."""

    def __init__(self) -> None:
        self.by_name: dict[str, ImageRecord] = {}
        self.pullable: dict[str, ImageRecord] = {}
        self.pull_error: BaseException | None = None
        self.pulls: list[str] = []

    def add(self, name: str, record: ImageRecord) -> None:
        self.by_name[name] = record

    def find(self, text: str) -> ImageRecord | None:
        record = self.by_name.get(text)
        if record is not None:
            return record
        return next((r for r in self.by_name.values() if r.id == text), None)

    def lookup(self, image_id: str) -> ImageRecord | None:
        return next((r for r in self.by_name.values() if r.id == image_id), None)

    async def pull(self, text: str) -> ImageRecord:
        self.pulls.append(text)
        if self.pull_error is not None:
            raise self.pull_error
        record = self.pullable.pop(text)
        self.by_name[text] = record
        return record


def image_record(name: str, *, layer: str, cmd: Sequence[str] = ("sleep", "3600")) -> ImageRecord:
    """An image of one (empty) layer whose chain id is ``layer``'s digest."""
    diff_id = compute_digest(layer.encode())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"], "StopSignal": "SIGTERM"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    config_json = json.dumps(config)
    return ImageRecord(
        id=compute_digest(config_json.encode()),
        manifest_digest=compute_digest(f"manifest {name}".encode()),
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        size=1,
        chain_id=chain_ids([diff_id])[-1],
        config_json=config_json,
        created_at=0.0,
        repo_tags=(name,),
    )


@dataclass
class PodLayer:
    """Everything of the pod layer for one test (see the module docstring)."""

    root: Path
    db: Database
    store: PodStore
    exchange: RecordingExchange
    tasks: FakeTaskService
    images: FakeImages
    rootfs: FakeRootfs
    namespaces: FakeNamespaces
    dirs: FakeDirs
    snapshotter: NativeSnapshotter
    settings: PodSettings
    sandboxes: SandboxController
    containers: ContainerController
    service: PodService
    image: ImageRecord
    sandbox_image: ImageRecord
    _closed: bool = field(default=False)

    @classmethod
    def build(
        cls,
        root: Path,
        *,
        db: Database | None = None,
        cgroups: CgroupMounts | None = None,
        hooks: PodHooks | None = None,
    ) -> PodLayer:
        """A pod layer under ``root``; pass the ``db`` (and the same ``root``) of an earlier
        layer to play a daemon restart (then call ``service.recover()``). ``cgroups`` (e.g.
        a unified hierarchy in a temporary directory) lets the layer remove pod cgroups;
        ``hooks`` are the lifecycle hooks both controllers call (default: none)."""
        fresh = db is None
        if db is None:
            db = Database(root / "metadata.db")
            db.open()
        store = PodStore(db)
        exchange = RecordingExchange()
        tasks = FakeTaskService()
        images = FakeImages()
        rootfs = FakeRootfs()
        namespaces = FakeNamespaces()
        dirs = FakeDirs()
        snapshotter = NativeSnapshotter(root / "snapshots")
        image = image_record(IMAGE_NAME, layer="busybox")
        sandbox_image = image_record(SANDBOX_IMAGE, layer="pause", cmd=("/pause",))
        if fresh:
            for record in (image, sandbox_image):
                snapshotter.prepare("extract", "")
                snapshotter.commit(record.chain_id, "extract")
        images.add(IMAGE_NAME, image)
        images.pullable[SANDBOX_IMAGE] = sandbox_image
        settings = PodSettings(
            state_dir=root / "state",
            sandbox_image=SANDBOX_IMAGE,
            default_handler="runc",
            handlers=("crun", "runc"),
        )
        common = dict(
            store=store,
            tasks=tasks,
            images=images,
            snapshotter=snapshotter,
            exchange=exchange,
            settings=settings,
            cgroups=cgroups,
            rootfs=rootfs,
            dirs=dirs,
            hooks=hooks,
        )
        sandboxes = SandboxController(
            **common,  # type: ignore[arg-type]
            namespaces=namespaces,
            network=EventNetwork(exchange, timeout=30),
        )
        containers = ContainerController(sandboxes=sandboxes, **common)  # type: ignore[arg-type]
        tasks.on_exit(containers.on_exit)
        service = PodService(store=store, tasks=tasks, sandboxes=sandboxes, containers=containers)
        return cls(
            root=root,
            db=db,
            store=store,
            exchange=exchange,
            tasks=tasks,
            images=images,
            rootfs=rootfs,
            namespaces=namespaces,
            dirs=dirs,
            snapshotter=snapshotter,
            settings=settings,
            sandboxes=sandboxes,
            containers=containers,
            service=service,
            image=image,
            sandbox_image=sandbox_image,
        )

    # ---- configs ------------------------------------------------------------------------

    @staticmethod
    def host_pod(
        name: str, *, attempt: int = 0, pid: NamespaceMode = NamespaceMode.CONTAINER
    ) -> SandboxConfig:
        """A pod on the node's network and IPC; ``pid=NamespaceMode.POD`` gives it an infra
        task (a shared PID namespace)."""
        return SandboxConfig(
            metadata=PodMetadata(
                name=name, uid=f"uid-{name}", namespace="default", attempt=attempt
            ),
            hostname=name,
            security=SecurityContext(
                namespaces=NamespaceOptions(
                    network=NamespaceMode.NODE, ipc=NamespaceMode.NODE, pid=pid
                )
            ),
        )

    @staticmethod
    def pod(name: str, *, attempt: int = 0) -> SandboxConfig:
        """A pod with its own network, IPC and UTS namespaces (pinned by the fake) and a
        network attached through the exchange (answer it with :class:`FakeNetworkManager`)."""
        return SandboxConfig(
            metadata=PodMetadata(
                name=name, uid=f"uid-{name}", namespace="default", attempt=attempt
            ),
            hostname=name,
        )

    @staticmethod
    def container(name: str, *, image: str = IMAGE_NAME, attempt: int = 0) -> ContainerConfig:
        return ContainerConfig(name=name, attempt=attempt, image=image, command=("sleep", "9"))

    # ---- what is left on the "node" -----------------------------------------------------

    def leftovers(self) -> list[str]:
        """Everything a pod or container left: state directories, snapshots other than the
        images', mounts, tasks, records, reserved names. Empty on a clean node."""
        found: list[str] = []
        for kind in ("sandboxes", "containers"):
            base = self.settings.state_dir / kind
            if base.is_dir():
                found += [f"dir {kind}/{p.name}" for p in base.iterdir()]
        images = {self.image.chain_id, self.sandbox_image.chain_id}
        found += [f"snapshot {i.key}" for i in self.snapshotter.walk() if i.key not in images]
        found += [f"mount {t}" for t in self.rootfs.mounted]
        found += [f"pinned {p}" for p in self.namespaces.pinned]
        found += [f"task {t}" for t in self.tasks.live()]
        found += [f"sandbox record {s.id}" for s in self.store.sandboxes.all()]
        found += [f"container record {c.id}" for c in self.store.containers.all()]
        return found

    def topics(self) -> list[str]:
        """Topics published since the last call, in order."""
        out = [event.topic for event in self.exchange.published]
        self.exchange.published.clear()
        return out

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.snapshotter.close()
            self.db.close()
