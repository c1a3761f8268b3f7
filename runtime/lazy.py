"""A module imported when one of its attributes is first read, not when the module naming it is.

For libraries a daemon needs only for some requests (the HTTP stack of pulls and pushes):
importing them with everything else was a large part of every start. The first use must not
import on the event loop (the import holds it); callers that own a loop call :func:`preload` on a
thread before that use (``asyncio.to_thread(preload, ...)``). ``importlib.import_module`` is
thread-safe, so a preload racing a first use only makes one of them wait for the other.

    if TYPE_CHECKING:
        import httpx
    else:
        httpx = lazy.module("httpx")
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for module ``name`` until an attribute is read; then imports it (once: later
    imports are a ``sys.modules`` lookup) and answers from it."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def module(name: str) -> Any:
    """A stand-in for module ``name`` (typed ``Any``: import the real one under TYPE_CHECKING)."""
    return LazyModule(name)


def preload(*names: str) -> list[ModuleType]:
    """Import ``names`` now. Blocking: call on a thread when a loop is running."""
    return [importlib.import_module(n) for n in names]
