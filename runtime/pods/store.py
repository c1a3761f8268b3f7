"""Sandbox and container records: in memory for list and status (polled every second), written
through to the metadata database so that a restarted daemon lists exactly what exists.

Names: kubelet identifies a pod by (name, namespace, uid, attempt) and a container by its name
and attempt within that pod. ``NameRegistry`` reserves such a name for one id; a second
creation under a name another object holds is refused with AlreadyExists naming the holder,
while the same creation arriving again (kubelet's retry after its deadline) is recognised by
the caller through ``holder``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from runtime.codec import dataclass_from_plain, to_plain
from runtime.errors import AlreadyExists, PinnaceError
from runtime.metadata.db import Database
from runtime.model.pods import Container, ContainerConfig, PodMetadata, Sandbox

T = TypeVar("T")
log = logging.getLogger(__name__)


def sandbox_name_key(meta: PodMetadata) -> str:
    """kubelet's identity of a pod sandbox (its name in containerd and CRI-O too)."""
    return f"k8s_POD_{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"


def container_name_key(config: ContainerConfig, pod: PodMetadata) -> str:
    return f"k8s_{config.name}_{pod.name}_{pod.namespace}_{pod.uid}_{config.attempt}"


class NameRegistry:
    """Names reserved for ids, in memory (the database's UNIQUE constraint backs it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, str] = {}

    def reserve(self, name: str, owner: str) -> None:
        with self._lock:
            holder = self._holders.get(name)
            if holder is not None and holder != owner:
                raise AlreadyExists(f"name {name!r} is reserved for {holder}")
            self._holders[name] = owner

    def holder(self, name: str) -> str | None:
        with self._lock:
            return self._holders.get(name)

    def release(self, name: str, owner: str) -> None:
        with self._lock:
            if self._holders.get(name) == owner:
                del self._holders[name]

    def release_owner(self, owner: str) -> None:
        """Release every name ``owner`` holds (when its name can no longer be derived)."""
        with self._lock:
            for name in [n for n, o in self._holders.items() if o == owner]:
                del self._holders[name]


R = TypeVar("R", Sandbox, Container)


class _Records(Generic[R]):
    """One table of JSON records of dataclass ``cls``, mirrored in memory."""

    def __init__(self, db: Database, table: str, cls: type[R], key: Callable[[R], str]) -> None:
        self._db = db
        self._table = table
        self._cls: type[R] = cls
        self._key: Callable[[R], str] = key
        self._lock = threading.Lock()
        self._items: dict[str, R] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """Counts the changes to this table: equal generations, equal contents (callers that
        derive views from the records cache them by it)."""
        return self._generation

    def load(self) -> list[R]:
        """Read every record; one that no longer parses (damage, or written by a pinnace
        whose model differs) is dropped from the database with a warning, never fatal."""
        rows = self._db.query(f"SELECT id, record FROM {self._table}")
        items = {}
        for row in rows:
            try:
                items[row["id"]] = dataclass_from_plain(
                    self._cls, json.loads(row["record"]), self._table
                )
            except (ValueError, TypeError, KeyError, PinnaceError) as exc:
                log.warning("dropping unreadable %s record %s: %s", self._table, row["id"], exc)
                with self._db.transaction() as conn:
                    conn.execute(f"DELETE FROM {self._table} WHERE id = ?", (row["id"],))
        with self._lock:
            self._items = items
            self._generation += 1
        return list(items.values())

    def get(self, id: str) -> R | None:
        with self._lock:
            return self._items.get(id)

    def all(self) -> list[R]:
        with self._lock:
            return list(self._items.values())

    def put(self, item: R, **columns: str) -> None:
        record = json.dumps(to_plain(item), sort_keys=True)
        names = ["id", "name_key", "record", *columns]
        values = [item.id, self._key(item), record, *columns.values()]
        placeholders = ", ".join("?" for _ in names)
        with self._db.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {self._table} ({', '.join(names)}) "
                f"VALUES ({placeholders})",
                values,
            )
        with self._lock:
            self._items[item.id] = item
            self._generation += 1

    def remove(self, id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(f"DELETE FROM {self._table} WHERE id = ?", (id,))
        with self._lock:
            if self._items.pop(id, None) is not None:
                self._generation += 1


class PodStore:
    """Sandboxes and containers, by id, in memory and in the database. Writes block (call them
    from a thread); reads never touch the disk."""

    def __init__(self, db: Database) -> None:
        self.names = NameRegistry()
        self.sandboxes: _Records[Sandbox] = _Records(
            db, "sandboxes", Sandbox, lambda s: sandbox_name_key(s.config.metadata)
        )
        self._pods: dict[str, PodMetadata] = {}
        self.containers: _Records[Container] = _Records(
            db, "containers", Container, self._container_key
        )

    def _container_key(self, c: Container) -> str:
        sandbox = self.sandboxes.get(c.sandbox_id)
        pod = sandbox.config.metadata if sandbox is not None else PodMetadata("", "", "")
        return container_name_key(c.config, pod)

    def load(self) -> tuple[list[Sandbox], list[Container]]:
        sandboxes = self.sandboxes.load()
        containers = self.containers.load()
        for s in sandboxes:
            self.names.reserve(sandbox_name_key(s.config.metadata), s.id)
        for c in containers:
            self.names.reserve(self._container_key(c), c.id)
        return sandboxes, containers

    def put_sandbox(self, sandbox: Sandbox) -> None:
        self.sandboxes.put(sandbox)

    def put_container(self, container: Container) -> None:
        self.containers.put(container, sandbox_id=container.sandbox_id)

    def containers_of(self, sandbox_id: str) -> list[Container]:
        return [c for c in self.containers.all() if c.sandbox_id == sandbox_id]
