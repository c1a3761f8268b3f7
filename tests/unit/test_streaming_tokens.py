"""Single-use, expiring, bounded tokens of the streaming server."""

from __future__ import annotations

import pytest

from cri.streaming.tokens import RequestKind, TokenCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_works_once() -> None:
    cache: TokenCache[str] = TokenCache(ttl=60, capacity=10, clock=FakeClock())
    token = cache.issue(RequestKind.EXEC, "req")
    assert len(token) >= 22
    assert cache.consume(RequestKind.EXEC, token) == "req"
    assert cache.consume(RequestKind.EXEC, token) is None


def test_a_token_of_another_kind_is_not_consumed() -> None:
    cache: TokenCache[str] = TokenCache(ttl=60, capacity=10, clock=FakeClock())
    token = cache.issue(RequestKind.ATTACH, "req")
    assert cache.consume(RequestKind.EXEC, token) is None
    assert cache.consume(RequestKind.ATTACH, token) == "req"


def test_tokens_expire() -> None:
    clock = FakeClock()
    cache: TokenCache[str] = TokenCache(ttl=60, capacity=10, clock=clock)
    old = cache.issue(RequestKind.EXEC, "old")
    clock.now += 30
    young = cache.issue(RequestKind.EXEC, "young")
    clock.now += 31
    assert cache.consume(RequestKind.EXEC, old) is None
    assert cache.consume(RequestKind.EXEC, young) == "young"
    assert len(cache) == 0


def test_capacity_drops_the_oldest() -> None:
    cache: TokenCache[int] = TokenCache(ttl=60, capacity=3, clock=FakeClock())
    tokens = [cache.issue(RequestKind.PORTFORWARD, i) for i in range(5)]
    assert len(cache) == 3
    assert [cache.consume(RequestKind.PORTFORWARD, t) for t in tokens] == [None, None, 2, 3, 4]


def test_tokens_are_distinct() -> None:
    cache: TokenCache[int] = TokenCache(ttl=60, capacity=1000, clock=FakeClock())
    assert len({cache.issue(RequestKind.EXEC, i) for i in range(500)}) == 500


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenCache(ttl=0, capacity=1)
    with pytest.raises(ValueError):
        TokenCache(ttl=1, capacity=0)
