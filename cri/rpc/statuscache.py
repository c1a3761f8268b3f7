"""Status answers serialized once per state of the records they are made of.

The kubelet asks PodSandboxStatus for every pod and ContainerStatus for every container over
and over (the status manager, PLEG after a change), while a record changes a few times in its
life. Records are frozen dataclasses: a change puts a new object in the store, so the objects
an answer was built from say whether it is still true. An entry keeps those objects (strong
references: an id cannot be reused while the entry holds them) and the answer's bytes; a call
whose records are the very same objects gets the bytes back, anything else rebuilds. Only
answers that are a function of the records are cached (not verbose ones, and not the
PodSandboxStatus timestamp: the handler appends that per call).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from google.protobuf.message import Message


class StatusCache:
    """Serialized answers by key, valid while their input records are the same objects."""

    def __init__(self, *, size: int = 2048) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[tuple[object, ...], bytes]] = OrderedDict()

    def get(self, key: Hashable, inputs: tuple[object, ...], build: Callable[[], Message]) -> bytes:
        """The bytes of ``build()`` for ``key``, built again only when ``inputs`` are not the
        objects the cached answer was built from (compared by identity, in order)."""
        entry = self._entries.get(key)
        if entry is not None and _same(entry[0], inputs):
            self._entries.move_to_end(key)
            return entry[1]
        wire = build().SerializeToString()
        self._entries[key] = (inputs, wire)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return wire


def _same(kept: tuple[object, ...], now: tuple[object, ...]) -> bool:
    return len(kept) == len(now) and all(a is b for a, b in zip(kept, now, strict=True))
