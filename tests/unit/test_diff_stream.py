"""ByteFeed between producers (a thread, an asyncio task) and a consumer thread; HashingReader."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading

import pytest

from runtime.diff import ByteFeed, HashingReader
from runtime.errors import Unavailable


def test_thread_producer_to_reader_with_small_limit() -> None:
    data = os.urandom(3_000_000)
    feed = ByteFeed(limit=64 * 1024)

    def produce() -> None:
        for i in range(0, len(data), 10_000):
            feed.feed(data[i : i + 10_000])
        feed.close()

    producer = threading.Thread(target=produce)
    producer.start()
    out = []
    while chunk := feed.read(7_777):
        assert len(chunk) <= 7_777
        out.append(chunk)
    producer.join()
    assert b"".join(out) == data
    assert feed.read(10) == b""


def test_read_all() -> None:
    feed = ByteFeed()
    feed.feed(b"ab")
    feed.feed(b"cd")
    feed.close()
    assert feed.read() == b"abcd"


def test_fail_reaches_the_reader() -> None:
    feed = ByteFeed()
    feed.feed(b"partial")
    feed.fail(ConnectionError("registry went away"))
    with pytest.raises(ConnectionError, match="registry went away"):
        feed.read(100)


def test_reader_stopping_unblocks_a_full_producer() -> None:
    feed = ByteFeed(limit=10)
    feed.feed(b"x" * 10)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            feed.feed(b"more")  # blocks: the pipe is full
        except BaseException as exc:
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    feed.close_reader()
    producer.join(timeout=30)
    assert not producer.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Unavailable)


async def test_async_producer_and_thread_consumer() -> None:
    data = os.urandom(2_000_000)
    feed = ByteFeed(limit=32 * 1024)

    def consume() -> str:
        reader = HashingReader(feed)
        while reader.read(5000):
            pass
        return reader.digest()

    consumer = asyncio.create_task(asyncio.to_thread(consume))
    for i in range(0, len(data), 16_384):
        await feed.afeed(data[i : i + 16_384])
    feed.close()
    assert await consumer == "sha256:" + hashlib.sha256(data).hexdigest()


async def test_afeed_after_reader_stopped_raises() -> None:
    feed = ByteFeed(limit=4)
    await feed.afeed(b"1234")
    waiter = asyncio.create_task(feed.afeed(b"5678"))
    await asyncio.to_thread(feed.close_reader)
    with pytest.raises(Unavailable):
        await asyncio.wait_for(waiter, timeout=30)


def test_hashing_reader_counts() -> None:
    reader = HashingReader(io.BytesIO(b"abcdef"), algorithm="sha512")
    assert reader.read(4) == b"abcd"
    assert reader.read(100) == b"ef"
    assert reader.count == 6
    assert reader.digest() == "sha512:" + hashlib.sha512(b"abcdef").hexdigest()
