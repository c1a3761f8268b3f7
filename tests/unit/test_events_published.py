"""Events tell the truth: snapshot prepares, commits and removes, and image names created,
moved and deleted, are published once they are committed; every event type has a publisher."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.images.service import ImageService
from runtime.images.store import ImageStore
from runtime.metadata.db import Database
from runtime.snapshots.events import PublishingSnapshotter
from runtime.snapshots.native import NativeSnapshotter
from tests.support.pods import image_record


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "metadata.db")
    database.open()
    yield database
    database.close()


async def test_snapshot_changes_are_published_from_the_threads_that_make_them(
    tmp_path: Path,
) -> None:
    exchange = Exchange()
    inner = NativeSnapshotter(tmp_path / "snapshots")
    sn = PublishingSnapshotter(inner, exchange)
    async with exchange.subscribe('topic~="^/snapshots/"') as sub:
        await asyncio.to_thread(sn.prepare, "extract", "")
        await asyncio.to_thread(sn.commit, "sha256:layer", "extract")
        await asyncio.to_thread(sn.prepare, "ctr", "sha256:layer")
        await asyncio.to_thread(sn.remove, "ctr")
        seen = [(await sub.next(timeout=10)).event for _ in range(4)]
    assert seen == [
        ev.SnapshotPrepare(key="extract", parent=""),
        ev.SnapshotCommit(key="extract", name="sha256:layer"),
        ev.SnapshotPrepare(key="ctr", parent="sha256:layer"),
        ev.SnapshotRemove(key="ctr"),
    ]
    assert sn.root == inner.root  # what the wrapped one offers beyond the interface
    sn.close()


class _NoGC:
    def collect(self, *, startup: bool = False) -> Any:
        return None


async def test_image_names_deleted_are_published(db: Database, tmp_path: Path) -> None:
    exchange = Exchange()
    store = ImageStore(db)
    record = image_record("example.test/busybox:1.0", layer="l1")
    store.put(record, tags=["example.test/busybox:1.0", "example.test/busybox:latest"], digests=[])
    service = ImageService(
        content=None,  # type: ignore[arg-type]
        snapshotter=None,  # type: ignore[arg-type]
        images=store,
        puller=None,  # type: ignore[arg-type]
        collector=_NoGC(),  # type: ignore[arg-type]
        client_factory=None,  # type: ignore[arg-type]
        store_dirs=(tmp_path,),
        exchange=exchange,
    )
    async with exchange.subscribe('topic~="^/images/"') as sub:
        await service.untag("example.test/busybox:latest")
        first = (await sub.next(timeout=10)).event
        await service.remove(record.id)
        second = (await sub.next(timeout=10)).event
    assert first == ev.ImageDelete(name="example.test/busybox:latest")
    assert second == ev.ImageDelete(name="example.test/busybox:1.0")


def test_announce_tells_create_update_and_delete_apart(db: Database, tmp_path: Path) -> None:
    published: list[ev.Event] = []

    class Recording(Exchange):
        def publish(self, namespace: str, event: ev.Event) -> ev.Envelope:
            published.append(event)
            return super().publish(namespace, event)

    service = ImageService(
        content=None,  # type: ignore[arg-type]
        snapshotter=None,  # type: ignore[arg-type]
        images=ImageStore(db),
        puller=None,  # type: ignore[arg-type]
        collector=_NoGC(),  # type: ignore[arg-type]
        client_factory=None,  # type: ignore[arg-type]
        store_dirs=(tmp_path,),
        exchange=Recording(),
    )
    service.store.put(image_record("a:1", layer="a"), tags=["a:1", "moved:1"], digests=[])
    before = service._names()
    service.store.put(image_record("b:1", layer="b"), tags=["b:1", "moved:1"], digests=[])
    service._announce(before)
    assert published == [ev.ImageCreate(name="b:1"), ev.ImageUpdate(name="moved:1")]


def _constructed_event_classes(root: Path) -> dict[str, set[str]]:
    """Event class name → the modules under ``root`` (``runtime/``, ``cri/``) that build one,
    outside the module that defines them."""
    names = {cls.__name__ for cls in ev.EVENT_TYPES.values()}
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name == "types.py" and path.parent.name == "events":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = (
                    func.attr
                    if isinstance(func, ast.Attribute)
                    else func.id
                    if isinstance(func, ast.Name)
                    else None
                )
                if name in names:
                    found.setdefault(name, set()).add(str(path.relative_to(root.parent)))
    return found


def test_every_event_type_has_a_publisher() -> None:
    """An event type nothing builds is a promise nobody keeps: publish it where its fact
    becomes durable, or remove it (the behaviour of each publisher is tested beside it:
    tests/unit/test_pods_*.py, the tests above, tests/e2e/test_network.py)."""
    repo = Path(__file__).resolve().parents[2]
    built: dict[str, set[str]] = {}
    for package in ("runtime", "cri"):
        for name, where in _constructed_event_classes(repo / package).items():
            built.setdefault(name, set()).update(where)
    unpublished = sorted(c.__name__ for c in ev.EVENT_TYPES.values() if c.__name__ not in built)
    assert unpublished == []


def test_the_publisher_check_sees_a_type_nobody_builds(tmp_path: Path) -> None:
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "x.py").write_text(
        "from runtime.events import types as ev\n"
        "def f(exchange):\n"
        "    exchange.publish('k8s.io', ev.TaskExit(container_id='c', pid=1, exit_status=0))\n"
    )
    built = _constructed_event_classes(tmp_path / "runtime")
    assert set(built) == {"TaskExit"}
    assert {"TaskOOM", "ImageCreate"} <= {c.__name__ for c in ev.EVENT_TYPES.values()} - set(built)
