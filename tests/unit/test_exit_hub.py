"""ExitHub, the task layer's exit facts: conmon's exit files seen through inotify (a real watch
on a temporary directory, files written as conmon writes them), each exit resolved once, and
the overflow rule it shares with the event exchange: a subscriber that falls behind is dropped
with SubscriberDropped after what it had queued, and nobody else waits for it."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.errors import DeadlineExceeded
from runtime.events.exchange import Exchange, SubscriberDropped
from runtime.tasks import exits
from runtime.tasks.exits import ExitHub
from runtime.tasks.interfaces import ExitFact


def _write_exit(exit_dir: Path, task_id: str, code: int) -> None:
    """What conmon does: write a temporary file, then rename it into place."""
    tmp = exit_dir / f".{task_id}.tmp"
    tmp.write_text(str(code))
    os.rename(tmp, exit_dir / task_id)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[ExitHub]:
    made = ExitHub(tmp_path, oom_probe=lambda task_id: task_id.startswith("oom"))
    made.start()
    yield made
    await made.close()


async def test_an_exit_file_resolves_the_wait_once(hub: ExitHub, tmp_path: Path) -> None:
    seen: list[ExitFact] = []
    hub.on_exit(seen.append)
    hub.expect("a")
    hub.expect("oom-b")
    with pytest.raises(DeadlineExceeded, match="did not exit"):
        await hub.wait("a", timeout=0.05)
    _write_exit(tmp_path, "a", 3)
    _write_exit(tmp_path, "oom-b", 137)
    _write_exit(tmp_path, "unexpected", 1)  # nobody asked: never read
    a = await hub.wait("a", timeout=10)
    b = await hub.wait("oom-b", timeout=10)
    assert (a.exit_code, a.oom_killed) == (3, False)
    assert (b.exit_code, b.oom_killed) == (137, True)
    _write_exit(tmp_path, "a", 4)  # a second write of the same exit changes nothing
    assert (await hub.wait("a", timeout=10)).exit_code == 3
    assert sorted(f.id for f in seen) == ["a", "oom-b"]
    assert hub.known("unexpected") is None


async def test_an_exit_written_before_it_was_expected_is_found(
    hub: ExitHub, tmp_path: Path
) -> None:
    _write_exit(tmp_path, "early", 0)
    hub.expect("early")
    assert (await hub.wait("early", timeout=10)).exit_code == 0


async def test_a_subscriber_that_falls_behind_is_dropped_and_nobody_waits(
    hub: ExitHub, tmp_path: Path
) -> None:
    # the first exit goes straight to the slow subscriber's pending read; then its queue
    # fills (SUBSCRIBER_QUEUE) and the one after that drops it
    count = exits.SUBSCRIBER_QUEUE + 2
    slow = hub.exits()
    fast = hub.exits()
    # an async generator subscribes at its first step; this task is scheduled before any
    # exit is loaded (tasks run in order), and then never reads again
    slow_first = asyncio.ensure_future(anext(slow))
    for i in range(count):
        task_id = f"t{i}"
        hub.expect(task_id)
        _write_exit(tmp_path, task_id, i % 256)
        fact = await asyncio.wait_for(anext(fast), timeout=30)  # the reader that keeps up
        assert (fact.id, fact.exit_code) == (task_id, i % 256)
    drained = [(await slow_first).id]

    async def drain() -> None:
        async for fact in slow:
            drained.append(fact.id)

    with pytest.raises(SubscriberDropped, match="exit subscriber dropped"):
        await asyncio.wait_for(drain(), timeout=30)
    assert drained == [f"t{i}" for i in range(exits.SUBSCRIBER_QUEUE + 1)]  # then the drop
    await fast.aclose()


def test_the_bound_is_the_exchanges() -> None:
    default = inspect.signature(Exchange.subscribe).parameters["queue_size"].default
    assert exits.SUBSCRIBER_QUEUE == default
