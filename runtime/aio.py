"""asyncio helpers the runtime shares."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)


async def shielded(aw: Awaitable[Any], *, what: str = "cleanup") -> None:
    """Run ``aw`` (a cleanup) to completion even if the caller is being cancelled; a failure is
    logged, not raised, so one failed step does not stop the rest of a teardown."""
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise
    except Exception:
        log.exception("%s failed", what)
