"""Content-addressable blob storage: interfaces, the on-disk store and an in-memory double."""

from runtime.content.interfaces import (
    BlobInfo,
    ContentWriter,
    Ingester,
    IngestManager,
    IngestStatus,
    Manager,
    Provider,
    Store,
)
from runtime.content.local import LocalStore
from runtime.content.memory import MemoryStore

__all__ = [
    "BlobInfo",
    "ContentWriter",
    "IngestManager",
    "IngestStatus",
    "Ingester",
    "LocalStore",
    "Manager",
    "MemoryStore",
    "Provider",
    "Store",
]
