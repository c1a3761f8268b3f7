"""The exchange: per-subscriber order, filters, dropping slow subscribers, waiting for facts."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runtime.errors import DeadlineExceeded, Internal, Unavailable
from runtime.events import Exchange, SubscriberDropped
from runtime.events import types as t


def _start(i: int) -> t.SandboxStart:
    return t.SandboxStart(sandbox_id=f"sb{i}")


async def test_each_subscriber_sees_its_events_in_publish_order() -> None:
    exchange = Exchange()
    async with (
        exchange.subscribe() as everything,
        exchange.subscribe('topic=="/sandboxes/start",event.sandbox_id~="[02468]$"') as even,
    ):
        for i in range(10):
            exchange.publish("k8s.io", _start(i))
            exchange.publish("k8s.io", t.ImageCreate(name=f"img{i}"))
        got_all = [await everything.next(timeout=5) for _ in range(20)]
        got_even = [await even.next(timeout=5) for _ in range(5)]
    assert [e.event for e in got_all[::2]] == [_start(i) for i in range(10)]
    assert [e.event.name for e in got_all[1::2]] == [f"img{i}" for i in range(10)]
    assert [e.event for e in got_even] == [_start(i) for i in range(0, 10, 2)]
    assert all(e.namespace == "k8s.io" and e.timestamp.tzinfo for e in got_all)


async def test_filters_are_ored_and_namespaces_filtered() -> None:
    exchange = Exchange()
    sub = exchange.subscribe('topic=="/images/create"', "namespace==other")
    exchange.publish("k8s.io", _start(1))
    exchange.publish("other", _start(2))
    exchange.publish("k8s.io", t.ImageCreate(name="x"))
    sub.close()
    got = [e.event async for e in sub]
    assert got == [_start(2), t.ImageCreate(name="x")]


async def test_slow_subscriber_is_dropped_fast_one_continues_publisher_never_blocks() -> None:
    exchange = Exchange()
    slow = exchange.subscribe(queue_size=3)
    fast = exchange.subscribe(queue_size=3)
    received: list[t.Event] = []
    for i in range(10):
        exchange.publish("k8s.io", _start(i))  # synchronous: returning at all proves no block
        received.append((await fast.next(timeout=5)).event)
    assert received == [_start(i) for i in range(10)]
    assert slow.dropped and not fast.closed
    assert exchange.subscriber_count == 1
    # The slow one gets what it had queued, then learns it was dropped.
    assert [(await slow.next(timeout=5)).event for _ in range(3)] == [_start(i) for i in range(3)]
    with pytest.raises(SubscriberDropped) as info:
        await slow.next(timeout=5)
    assert isinstance(info.value, Unavailable)
    with pytest.raises(SubscriberDropped):  # and keeps saying so
        await slow.next(timeout=5)
    fast.close()


async def test_iteration_ends_after_close_and_drains_first() -> None:
    exchange = Exchange()
    sub = exchange.subscribe()
    exchange.publish("k8s.io", _start(1))
    exchange.close()
    exchange.publish("k8s.io", _start(2))
    assert [e.event async for e in sub] == [_start(1)]


async def test_wait_for_times_out_with_deadline_exceeded() -> None:
    exchange = Exchange()
    with pytest.raises(DeadlineExceeded):
        await exchange.wait_for('topic=="/tasks/exit"', trigger=None, timeout=0.01)
    assert exchange.subscriber_count == 0


async def test_wait_for_sees_an_event_published_synchronously_by_the_trigger() -> None:
    exchange = Exchange()

    def trigger() -> None:  # the fact is published before wait_for starts awaiting
        exchange.publish("k8s.io", t.SandboxNetnsRemoving(sandbox_id="a"))
        exchange.publish("k8s.io", t.NetworkDetached(sandbox_id="b"))
        exchange.publish("k8s.io", t.NetworkDetached(sandbox_id="a"))

    envelope = await exchange.wait_for(
        'topic=="/network/detached",event.sandbox_id==a', trigger=trigger, timeout=5
    )
    assert envelope.event == t.NetworkDetached(sandbox_id="a")

    async def async_trigger() -> None:
        exchange.publish("k8s.io", t.ImageDelete(name="i"))

    envelope = await exchange.wait_for(
        lambda e: e.topic == "/images/delete", trigger=async_trigger, timeout=5
    )
    assert envelope.event == t.ImageDelete(name="i")


async def test_publish_threadsafe_from_another_thread() -> None:
    exchange = Exchange()
    async with exchange.subscribe() as sub:
        thread = threading.Thread(
            target=lambda: [exchange.publish_threadsafe("k8s.io", _start(i)) for i in range(3)]
        )
        thread.start()
        got = [(await sub.next(timeout=5)).event for _ in range(3)]
        thread.join()
    assert got == [_start(i) for i in range(3)]


async def test_publish_off_loop_thread_is_a_bug() -> None:
    exchange = Exchange()
    exchange.subscribe().close()  # binds the loop
    errors: list[BaseException] = []

    def run() -> None:
        try:
            exchange.publish("k8s.io", _start(1))
        except Internal as e:
            errors.append(e)

    await asyncio.to_thread(run)
    assert len(errors) == 1
