"""The list-response cache: one build per (RPC, filter, store version)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc.listcache import ListCache


def _builder(calls: list[str], pod_id: str) -> Callable[[], pb.ListPodSandboxResponse]:
    def build() -> pb.ListPodSandboxResponse:
        calls.append(pod_id)
        return pb.ListPodSandboxResponse(items=[pb.PodSandbox(id=pod_id)])

    return build


def test_same_version_and_filter_returns_the_built_response_without_rebuilding() -> None:
    cache, calls = ListCache(), list[str]()
    first = cache.get("ListPodSandbox", b"", (1,), _builder(calls, "a"))
    again = cache.get("ListPodSandbox", b"", (1,), _builder(calls, "b"))
    assert again is first and calls == ["a"]


def test_a_new_version_rebuilds() -> None:
    cache, calls = ListCache(), list[str]()
    cache.get("ListPodSandbox", b"", (1,), _builder(calls, "a"))
    after = cache.get("ListPodSandbox", b"", (2,), _builder(calls, "b"))
    assert [i.id for i in after.items] == ["b"] and calls == ["a", "b"]


def test_filters_and_rpcs_have_their_own_entries() -> None:
    cache, calls = ListCache(), list[str]()
    ready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))
    cache.get("ListPodSandbox", b"", (1,), _builder(calls, "all"))
    cache.get("ListPodSandbox", ready.SerializeToString(), (1,), _builder(calls, "ready"))
    cache.get("ListContainers", b"", (1,), _builder(calls, "containers"))
    assert calls == ["all", "ready", "containers"]
    # An absent filter and an empty one serialize alike, so they share an entry.
    empty = pb.PodSandboxFilter().SerializeToString()
    cache.get("ListPodSandbox", empty, (1,), _builder(calls, "x"))
    assert calls == ["all", "ready", "containers"]


def test_the_least_recently_used_entry_is_evicted_past_the_size() -> None:
    cache, calls = ListCache(size=2), list[str]()
    cache.get("L", b"1", (1,), _builder(calls, "1"))
    cache.get("L", b"2", (1,), _builder(calls, "2"))
    cache.get("L", b"1", (1,), _builder(calls, "1 again"))  # a hit: 1 is now the newest
    cache.get("L", b"3", (1,), _builder(calls, "3"))  # evicts 2
    cache.get("L", b"1", (1,), _builder(calls, "1 must hit"))
    cache.get("L", b"2", (1,), _builder(calls, "2 rebuilt"))
    assert calls == ["1", "2", "3", "2 rebuilt"]


def test_a_failed_build_caches_nothing() -> None:
    cache, calls = ListCache(), list[str]()

    def broken() -> pb.ListPodSandboxResponse:
        raise ValueError("bad filter")

    with pytest.raises(ValueError):
        cache.get("L", b"", (1,), broken)
    cache.get("L", b"", (1,), _builder(calls, "a"))
    assert calls == ["a"]


def test_the_serialized_answer_is_the_cached_message_serialized_once() -> None:
    cache, calls = ListCache(), list[str]()
    wire = cache.get_serialized("ListPodSandbox", b"", (1,), _builder(calls, "a"))
    assert pb.ListPodSandboxResponse.FromString(wire).items[0].id == "a"
    # the same entry serves both forms, and the bytes are kept with it
    assert cache.get("ListPodSandbox", b"", (1,), _builder(calls, "b")).items[0].id == "a"
    assert cache.get_serialized("ListPodSandbox", b"", (1,), _builder(calls, "c")) is wire
    assert calls == ["a"]


def test_a_new_version_serializes_the_rebuilt_answer() -> None:
    cache, calls = ListCache(), list[str]()
    cache.get_serialized("ListPodSandbox", b"", (1,), _builder(calls, "a"))
    wire = cache.get_serialized("ListPodSandbox", b"", (2,), _builder(calls, "b"))
    assert pb.ListPodSandboxResponse.FromString(wire).items[0].id == "b"
