"""List responses built once per state change, not once per call.

The kubelet lists every pod and container each second (PLEG relist, with the same few filters:
none, ``{}``, ready sandboxes, running containers), while the objects change a few times a
minute. A response is built from the store's records and kept with the store's *version* (the
generations of the tables it read); the next call with the same filter and an unchanged version
gets the same message object back. gRPC only reads a response to serialize it, and nobody
mutates one after it is returned, so sharing it between calls is safe.

Reading the version before the records makes a race harmless: a write landing in between makes
the cached response newer than its version, and the next call rebuilds it.

``get_serialized`` answers the same entry as wire bytes, serialized once per entry: the servicer
returns them and the server's interceptor passes bytes through its response serializer, so a
cached answer of 200 containers is not serialized again for every call (measured: a quarter of
grpc-python's CPU per call for 30 containers, ``benchmarks/bench_grpc_floor.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class _Entry:
    __slots__ = ("message", "version", "wire")

    def __init__(self, version: tuple[int, ...], message: Message) -> None:
        self.version = version
        self.message = message
        self.wire: bytes | None = None  # serialized on the first get_serialized


class ListCache:
    """The last response for each (RPC, filter), valid while the store's version stands."""

    def __init__(self, *, size: int = 32) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()

    def get(
        self, rpc: str, request_filter: bytes, version: tuple[int, ...], build: Callable[[], M]
    ) -> M:
        """The cached response for ``rpc`` with this serialized filter at ``version``, else
        ``build()`` (cached). Filters are compared by their serialized bytes, so an absent
        filter and an empty one share an entry."""
        entry = self._entry(rpc, request_filter, version, build)
        return entry.message  # type: ignore[return-value]  # built by this key's build

    def get_serialized(
        self,
        rpc: str,
        request_filter: bytes,
        version: tuple[int, ...],
        build: Callable[[], Message],
    ) -> bytes:
        """The same response as ``get``, serialized (once per entry)."""
        entry = self._entry(rpc, request_filter, version, build)
        if entry.wire is None:
            entry.wire = entry.message.SerializeToString()
        return entry.wire

    def _entry(
        self,
        rpc: str,
        request_filter: bytes,
        version: tuple[int, ...],
        build: Callable[[], Message],
    ) -> _Entry:
        key = (rpc, request_filter)
        entry = self._entries.get(key)
        if entry is not None and entry.version == version:
            self._entries.move_to_end(key)
            return entry
        entry = _Entry(version, build())
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return entry
