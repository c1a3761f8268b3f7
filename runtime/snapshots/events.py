"""A snapshotter that reports its durable changes on the event exchange.

:class:`PublishingSnapshotter` wraps any :class:`runtime.snapshots.interfaces.Snapshotter` and,
after the wrapped one has committed a change to its metadata, publishes the fact:
``/snapshots/prepare`` (an active snapshot exists, ``key`` on ``parent``), ``/snapshots/commit``
(active ``key`` became committed ``name``) and ``/snapshots/remove``. Snapshotter calls run in
threads (they block), so the events go through ``Exchange.publish_threadsafe``, which hands them
to the exchange's loop in call order. Everything else is the wrapped snapshotter's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.mount.types import Mount
from runtime.snapshots.interfaces import Info, Snapshotter, Usage


class PublishingSnapshotter:
    """``inner`` with its prepares, commits and removes published (see the module docstring)."""

    def __init__(self, inner: Snapshotter, exchange: Exchange) -> None:
        self.inner = inner
        self._exchange = exchange
        self.independent_layers = inner.independent_layers

    def _publish(self, event: ev.Event) -> None:
        self._exchange.publish_threadsafe(ev.K8S_NAMESPACE, event)

    def prepare(
        self, key: str, parent: str = "", *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        mounts = self.inner.prepare(key, parent, labels=labels)
        self._publish(ev.SnapshotPrepare(key=key, parent=parent))
        return mounts

    def commit(
        self,
        name: str,
        key: str,
        *,
        labels: Mapping[str, str] | None = None,
        parent: str | None = None,
    ) -> None:
        self.inner.commit(name, key, labels=labels, parent=parent)
        self._publish(ev.SnapshotCommit(key=key, name=name))

    def remove(self, key: str) -> None:
        self.inner.remove(key)
        self._publish(ev.SnapshotRemove(key=key))

    def view(
        self, key: str, parent: str, *, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        return self.inner.view(key, parent, labels=labels)

    def stat(self, key: str) -> Info:
        return self.inner.stat(key)

    def usage(self, key: str) -> Usage:
        return self.inner.usage(key)

    def mounts(self, key: str) -> list[Mount]:
        return self.inner.mounts(key)

    def walk(self) -> Iterator[Info]:
        return self.inner.walk()

    def update_labels(self, key: str, labels: Mapping[str, str]) -> Info:
        return self.inner.update_labels(key, labels)

    def layer_dir(self, key: str) -> Path:
        return self.inner.layer_dir(key)

    def cleanup(self) -> int:
        return self.inner.cleanup()

    def flush(self) -> None:
        self.inner.flush()

    def pending_removal(self) -> Usage:
        return self.inner.pending_removal()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # what a particular snapshotter offers beyond the interface (its root, say)
        return getattr(self.inner, name)
