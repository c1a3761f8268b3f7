"""Pages of a server-streaming list RPC (``StreamPodSandboxes``, ``StreamContainers``, …).

A List RPC answers in one message, which a node with thousands of objects can push past
gRPC's message size limit (4 MiB by default on the kubelet's side). Each Stream RPC sends the
same items in order, split into pages of at most ``max_bytes`` serialized bytes and
``max_items`` items; an item bigger than a page by itself goes alone. An empty result is
one empty page, so a client always sees the stream answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

PAGE_BYTES = 1024 * 1024
PAGE_ITEMS = 500

# a repeated message field costs its tag and a length varint beside the item itself
_FIELD_OVERHEAD = 6


class _Sized(Protocol):
    def ByteSize(self) -> int: ...


M = TypeVar("M", bound=_Sized)


def pages(
    items: Iterable[M], *, max_bytes: int = PAGE_BYTES, max_items: int = PAGE_ITEMS
) -> Iterator[list[M]]:
    """Split ``items`` into consecutive pages (see the module docstring)."""
    page: list[M] = []
    size = 0
    sent = False
    for item in items:
        cost = item.ByteSize() + _FIELD_OVERHEAD
        if page and (size + cost > max_bytes or len(page) >= max_items):
            yield page
            sent = True
            page, size = [], 0
        page.append(item)
        size += cost
    if page or not sent:
        yield page
