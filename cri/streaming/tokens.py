"""Single-use, expiring tokens naming a pending Exec, Attach or PortForward request.

The RPC answers with ``http://host:port/<kind>/<token>``; the request itself stays here until
a client presents the token, which consumes it. A token is unguessable (128 random bits),
expires after ``ttl`` seconds, and at most ``capacity`` are outstanding: a new one drops the
oldest, so a caller that asks and never connects cannot grow the daemon's memory.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class RequestKind(enum.Enum):
    """What a token was issued for; the URL path's first segment."""

    EXEC = "exec"
    ATTACH = "attach"
    PORTFORWARD = "portforward"


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    kind: RequestKind
    request: T
    expires_at: float


class TokenCache(Generic[T]):
    """Tokens to pending requests. ``clock`` is a monotonic clock (seconds), injectable."""

    def __init__(
        self,
        *,
        ttl: float,
        capacity: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or capacity < 1:
            raise ValueError("ttl must be positive and capacity at least 1")
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def issue(self, kind: RequestKind, request: T) -> str:
        """Store ``request`` and return its new token (URL-safe, 22 characters)."""
        self._expire()
        while len(self._entries) >= self._capacity:
            self._entries.popitem(last=False)
        token = secrets.token_urlsafe(16)
        self._entries[token] = _Entry(kind, request, self._clock() + self._ttl)
        return token

    def consume(self, kind: RequestKind, token: str) -> T | None:
        """The request behind ``token`` if it is live and was issued for ``kind``, removing
        it (single use); None otherwise (a token of another kind stays)."""
        self._expire()
        entry = self._entries.get(token)
        if entry is None or entry.kind is not kind:
            return None
        del self._entries[token]
        return entry.request

    def _expire(self) -> None:
        now = self._clock()
        # Entries are in issue order and share one ttl, so expired ones are at the front.
        while self._entries:
            token, entry = next(iter(self._entries.items()))
            if entry.expires_at > now:
                return
            del self._entries[token]
