"""Create-once-per-name: kubelet's retries get the creation they retried."""

from __future__ import annotations

import asyncio

import pytest

from runtime.errors import AlreadyExists, Internal
from runtime.pods.creations import Creations
from runtime.pods.store import NameRegistry


async def test_a_retry_while_creating_waits_for_the_same_creation() -> None:
    names = NameRegistry()
    creations: Creations[str] = Creations(names, "thing")
    release = asyncio.Event()
    started: list[str] = []

    async def create(new_id: str) -> str:
        started.append(new_id)
        await release.wait()
        return f"made-{new_id}"

    first = asyncio.ensure_future(
        creations.create_once("k", "id-1", create, existing=lambda _: None, same=lambda _: True)
    )
    await asyncio.sleep(0)  # let the first creation start
    retry = asyncio.ensure_future(
        creations.create_once("k", "id-2", create, existing=lambda _: None, same=lambda _: True)
    )
    await asyncio.sleep(0)
    release.set()
    assert await first == "made-id-1"
    assert await retry == "made-id-1"
    assert started == ["id-1"]
    assert names.holder("k") == "id-1"


async def test_a_cancelled_caller_does_not_cancel_the_creation() -> None:
    creations: Creations[str] = Creations(NameRegistry(), "thing")
    release = asyncio.Event()

    async def create(new_id: str) -> str:
        await release.wait()
        return new_id

    caller = asyncio.ensure_future(
        creations.create_once("k", "id-1", create, existing=lambda _: None, same=lambda _: True)
    )
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    retry = asyncio.ensure_future(
        creations.create_once("k", "id-2", create, existing=lambda _: None, same=lambda _: True)
    )
    await asyncio.sleep(0)
    release.set()
    assert await retry == "id-1"


async def test_after_it_finished_same_config_gets_it_and_another_is_refused() -> None:
    names = NameRegistry()
    creations: Creations[str] = Creations(names, "thing")

    async def create(new_id: str) -> str:
        return new_id

    made = await creations.create_once(
        "k", "id-1", create, existing=lambda _: None, same=lambda _: True
    )
    records = {"id-1": made}
    again = await creations.create_once(
        "k", "id-2", create, existing=records.get, same=lambda r: r == "id-1"
    )
    assert again == "id-1"
    with pytest.raises(AlreadyExists, match="id-1"):
        await creations.create_once("k", "id-3", create, existing=records.get, same=lambda _: False)


async def test_a_failed_creation_releases_the_name() -> None:
    names = NameRegistry()
    creations: Creations[str] = Creations(names, "thing")

    async def fail(new_id: str) -> str:
        raise Internal("boom")

    with pytest.raises(Internal):
        await creations.create_once("k", "id-1", fail, existing=lambda _: None, same=lambda _: True)
    assert names.holder("k") is None
