"""PodStore: records in memory, written through to sqlite, and kubelet's names reserved."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.errors import AlreadyExists
from runtime.metadata.db import Database
from runtime.model.pods import (
    Container,
    ContainerConfig,
    ContainerState,
    PodMetadata,
    Sandbox,
    SandboxConfig,
    SandboxState,
)
from runtime.pods.store import NameRegistry, PodStore, container_name_key, sandbox_name_key

META = PodMetadata(name="web", uid="u1", namespace="default", attempt=1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "metadata.db")
    database.open()
    yield database
    database.close()


def _sandbox(id: str = "sb1") -> Sandbox:
    return Sandbox(
        id=id,
        config=SandboxConfig(metadata=META, hostname="web"),
        state=SandboxState.READY,
        created_at=1,
        runtime_handler="runc",
    )


def _container(id: str = "c1", sandbox_id: str = "sb1", name: str = "app") -> Container:
    return Container(
        id=id,
        sandbox_id=sandbox_id,
        config=ContainerConfig(name=name, image="busybox"),
        image_id="sha256:" + "a" * 64,
        image_name="busybox",
        state=ContainerState.CREATED,
        created_at=2,
    )


def test_records_survive_a_restart_with_their_names(db: Database) -> None:
    store = PodStore(db)
    store.put_sandbox(_sandbox())
    store.put_container(_container())
    store.put_container(_container("c2", name="sidecar"))
    store.containers.remove("c2")

    again = PodStore(db)
    sandboxes, containers = again.load()
    assert sandboxes == [_sandbox()]
    assert containers == [_container()]
    assert again.containers_of("sb1") == [_container()]
    assert again.names.holder(sandbox_name_key(META)) == "sb1"
    assert again.names.holder(container_name_key(_container().config, META)) == "c1"


def test_a_record_replaced_is_replaced_in_memory_and_on_disk(db: Database) -> None:
    store = PodStore(db)
    store.put_sandbox(_sandbox())
    store.put_sandbox(replace(_sandbox(), state=SandboxState.NOTREADY))
    assert store.sandboxes.get("sb1").state == SandboxState.NOTREADY  # type: ignore[union-attr]
    loaded, _ = PodStore(db).load()
    assert [s.state for s in loaded] == [SandboxState.NOTREADY]


def test_names_are_held_by_one_owner() -> None:
    names = NameRegistry()
    names.reserve("k8s_POD_web", "sb1")
    names.reserve("k8s_POD_web", "sb1")  # the same owner again: fine
    with pytest.raises(AlreadyExists, match="sb1"):
        names.reserve("k8s_POD_web", "sb2")
    names.release("k8s_POD_web", "sb2")  # not the holder: nothing happens
    assert names.holder("k8s_POD_web") == "sb1"
    names.reserve("k8s_app", "sb1")
    names.release_owner("sb1")
    assert names.holder("k8s_POD_web") is None and names.holder("k8s_app") is None
