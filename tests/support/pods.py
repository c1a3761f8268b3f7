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

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runtime.events.exchange import Exchange
from runtime.events.types import Envelope, Event
from runtime.images.manifest import chain_ids, compute_digest
from runtime.images.store import ImageRecord
from runtime.metadata.db import Database
from runtime.model.pods import (
    ContainerConfig,
    NamespaceMode,
    NamespaceOptions,
    PodMetadata,
    SandboxConfig,
    SecurityContext,
)
from runtime.mount.types import Mount
from runtime.pods.containers import ContainerController
from runtime.pods.rootfs import HostDirs
from runtime.pods.sandboxes import SandboxController
from runtime.pods.service import PodService
from runtime.pods.settings import PodSettings
from runtime.pods.store import PodStore
from runtime.snapshots.native import NativeSnapshotter
from tests.support.tasks import FakeTaskService

__all__ = ["FakeDirs", "FakeImages", "FakeRootfs", "PodLayer", "RecordingExchange"]

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
        self.fail_next: BaseException | None = None

    def mount(self, mounts: Sequence[Mount], target: Path) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        target.mkdir(parents=True, exist_ok=True)
        self.mounted[target] = tuple(mounts)

    def unmount(self, target: Path) -> None:
        self.mounted.pop(target, None)


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
    def build(cls, root: Path, *, db: Database | None = None) -> PodLayer:
        """A pod layer under ``root``; pass the ``db`` (and the same ``root``) of an earlier
        layer to play a daemon restart (then call ``service.recover()``)."""
        fresh = db is None
        if db is None:
            db = Database(root / "metadata.db")
            db.open()
        store = PodStore(db)
        exchange = RecordingExchange()
        tasks = FakeTaskService()
        images = FakeImages()
        rootfs = FakeRootfs()
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
            cgroups=None,
            rootfs=rootfs,
            dirs=dirs,
        )
        sandboxes = SandboxController(**common)  # type: ignore[arg-type]
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
