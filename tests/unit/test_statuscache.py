"""The status-answer cache: bytes kept while the records they were built from are the same
objects; and a cached PodSandboxStatus body with the call's timestamp appended parses as one
answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc.statuscache import StatusCache


@dataclass(frozen=True)
class _Record:
    state: str


def _builder(calls: list[str], name: str) -> Callable[[], pb.ContainerStatusResponse]:
    def build() -> pb.ContainerStatusResponse:
        calls.append(name)
        return pb.ContainerStatusResponse(status=pb.ContainerStatus(id=name))

    return build


def test_the_same_record_objects_get_the_same_bytes_without_rebuilding() -> None:
    cache, calls, record = StatusCache(), list[str](), _Record("running")
    first = cache.get("c1", (record, None), _builder(calls, "a"))
    again = cache.get("c1", (record, None), _builder(calls, "b"))
    assert again is first and calls == ["a"]
    assert pb.ContainerStatusResponse.FromString(first).status.id == "a"


def test_an_equal_but_new_record_rebuilds() -> None:
    # a change in the store is a new object, even where its fields compare equal
    cache, calls = StatusCache(), list[str]()
    cache.get("c1", (_Record("running"),), _builder(calls, "a"))
    cache.get("c1", (_Record("running"),), _builder(calls, "b"))
    assert calls == ["a", "b"]


def test_more_or_fewer_inputs_rebuild() -> None:
    cache, calls, pod, ctr = StatusCache(), list[str](), _Record("ready"), _Record("running")
    cache.get("p1", (pod,), _builder(calls, "alone"))
    cache.get("p1", (pod, ctr), _builder(calls, "with a container"))
    cache.get("p1", (pod,), _builder(calls, "alone again"))
    assert calls == ["alone", "with a container", "alone again"]


def test_keys_have_their_own_entries_and_the_oldest_is_evicted() -> None:
    cache, calls, record = StatusCache(size=2), list[str](), _Record("running")
    cache.get("1", (record,), _builder(calls, "1"))
    cache.get("2", (record,), _builder(calls, "2"))
    cache.get("1", (record,), _builder(calls, "1 hit"))  # 1 is now the newest
    cache.get("3", (record,), _builder(calls, "3"))  # evicts 2
    cache.get("1", (record,), _builder(calls, "1 hit again"))
    cache.get("2", (record,), _builder(calls, "2 rebuilt"))
    assert calls == ["1", "2", "3", "2 rebuilt"]


def test_a_timestamp_appended_to_a_cached_body_parses_as_one_answer() -> None:
    body = pb.PodSandboxStatusResponse(
        status=pb.PodSandboxStatus(id="p1", state=pb.SANDBOX_READY),
        containers_statuses=[pb.ContainerStatus(id="c1")],
    ).SerializeToString()
    wire = body + pb.PodSandboxStatusResponse(timestamp=1234).SerializeToString()
    answer = pb.PodSandboxStatusResponse.FromString(wire)
    assert answer.timestamp == 1234
    assert answer.status.id == "p1" and [c.id for c in answer.containers_statuses] == ["c1"]
