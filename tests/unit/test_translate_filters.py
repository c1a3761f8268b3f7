"""cri.translate.filters: short ids, states and label selectors."""

from __future__ import annotations

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.translate.filters import ContainerFilter, SandboxFilter, labels_match, resolve_id
from runtime.errors import InvalidArgument
from runtime.model.pods import (
    Container,
    ContainerConfig,
    ContainerState,
    PodMetadata,
    Sandbox,
    SandboxConfig,
    SandboxState,
)


def sandbox(id: str, state: SandboxState = SandboxState.READY, **labels: str) -> Sandbox:
    cfg = SandboxConfig(metadata=PodMetadata(name=id, uid=id, namespace="ns"), labels=labels)
    return Sandbox(id=id, config=cfg, state=state, created_at=0, runtime_handler="")


def container(
    id: str, sandbox_id: str, state: ContainerState = ContainerState.RUNNING, **labels: str
) -> Container:
    return Container(
        id=id,
        sandbox_id=sandbox_id,
        config=ContainerConfig(name=id, labels=labels),
        image_id="sha256:x",
        image_name="x",
        state=state,
        created_at=0,
    )


SANDBOXES = [
    sandbox("aaa111", app="web", tier="front"),
    sandbox("aaa222", SandboxState.NOTREADY, app="web"),
    sandbox("bbb333", app="db"),
    sandbox("bbb", app="db"),
]


def ids(items: list[Sandbox] | list[Container]) -> list[str]:
    return [i.id for i in items]


def test_resolve_id() -> None:
    assert resolve_id("aaa1", ["aaa111", "aaa222"]) == "aaa111"
    assert resolve_id("aaa", ["aaa111", "aaa222"]) is None  # ambiguous
    assert resolve_id("bbb", ["bbb333", "bbb"]) == "bbb"  # exact wins, in any order
    assert resolve_id("bbb", ["bbb", "bbb333"]) == "bbb"
    assert resolve_id("zzz", ["aaa111"]) is None
    assert resolve_id("aaa111", ["aaa111", "aaa111"]) == "aaa111"


def test_labels_match() -> None:
    assert labels_match({"a": "1", "b": "2"}, {"a": "1"})
    assert labels_match({"a": "1"}, {})
    assert not labels_match({"a": "1"}, {"a": "2"})
    assert not labels_match({}, {"a": ""})  # a key must be present, even for an empty value


def test_empty_sandbox_filter_keeps_everything() -> None:
    assert ids(SandboxFilter.from_pb(None).apply(SANDBOXES)) == ids(SANDBOXES)
    assert ids(SandboxFilter.from_pb(pb.PodSandboxFilter()).apply(SANDBOXES)) == ids(SANDBOXES)


def test_sandbox_short_id() -> None:
    f = SandboxFilter.from_pb(pb.PodSandboxFilter(id="aaa2"))
    assert ids(f.apply(SANDBOXES)) == ["aaa222"]
    assert f.matches(SANDBOXES[1]) and not f.matches(SANDBOXES[0])


def test_sandbox_ambiguous_or_unknown_id_matches_nothing() -> None:
    assert SandboxFilter(id="aaa").apply(SANDBOXES) == []
    assert SandboxFilter(id="zzz").apply(SANDBOXES) == []


def test_sandbox_exact_id_wins_over_prefix() -> None:
    assert ids(SandboxFilter(id="bbb").apply(SANDBOXES)) == ["bbb"]


def test_sandbox_state_filter() -> None:
    f = SandboxFilter.from_pb(
        pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    )
    assert f.state is SandboxState.NOTREADY
    assert ids(f.apply(SANDBOXES)) == ["aaa222"]
    # A set state wrapper holding the zero value filters for READY, not "unset".
    ready = SandboxFilter.from_pb(pb.PodSandboxFilter(state=pb.PodSandboxStateValue()))
    assert ids(ready.apply(SANDBOXES)) == ["aaa111", "bbb333", "bbb"]


def test_sandbox_label_selector() -> None:
    f = SandboxFilter.from_pb(pb.PodSandboxFilter(label_selector={"app": "web", "tier": "front"}))
    assert ids(f.apply(SANDBOXES)) == ["aaa111"]


def test_sandbox_conditions_combine() -> None:
    f = SandboxFilter(id="aaa1", state=SandboxState.NOTREADY)
    assert f.apply(SANDBOXES) == []


def test_sandbox_stats_filter() -> None:
    f = SandboxFilter.from_pb(pb.PodSandboxStatsFilter(id="bbb3", label_selector={"app": "db"}))
    assert f.state is None
    assert ids(f.apply(SANDBOXES)) == ["bbb333"]


def test_unknown_state_value_is_invalid() -> None:
    bad = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=9))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"filter\.state"):
        SandboxFilter.from_pb(bad)
    bad_c = pb.ContainerFilter(state=pb.ContainerStateValue(state=9))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"filter\.state"):
        ContainerFilter.from_pb(bad_c)


CONTAINERS = [
    container("c1aaaa", "aaa111", app="web"),
    container("c1bbbb", "aaa111", ContainerState.EXITED, app="web"),
    container("c2cccc", "aaa222", ContainerState.CREATED),
    container("c3dddd", "bbb333", app="db"),
]


def test_empty_container_filter_keeps_everything() -> None:
    assert ids(ContainerFilter.from_pb(None).apply(CONTAINERS)) == ids(CONTAINERS)


def test_container_short_id() -> None:
    assert ids(ContainerFilter(id="c1b").apply(CONTAINERS)) == ["c1bbbb"]
    assert ContainerFilter(id="c1").apply(CONTAINERS) == []  # ambiguous
    assert ContainerFilter(id="nope").apply(CONTAINERS) == []


def test_container_short_sandbox_id() -> None:
    f = ContainerFilter.from_pb(pb.ContainerFilter(pod_sandbox_id="aaa1"))
    assert ids(f.apply(CONTAINERS)) == ["c1aaaa", "c1bbbb"]
    assert ContainerFilter(pod_sandbox_id="aaa").apply(CONTAINERS) == []
    assert ContainerFilter(pod_sandbox_id="zzz").apply(CONTAINERS) == []


def test_container_sandbox_id_resolved_against_known_sandboxes() -> None:
    # "bbb" names sandbox "bbb" exactly, which has no containers; "bbb333" must not match.
    f = ContainerFilter(pod_sandbox_id="bbb")
    assert ids(f.apply(CONTAINERS)) == ["c3dddd"]  # resolved among the containers' sandboxes
    assert f.apply(CONTAINERS, sandbox_ids=[s.id for s in SANDBOXES]) == []


def test_container_state_and_labels() -> None:
    f = ContainerFilter.from_pb(
        pb.ContainerFilter(
            state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING),
            label_selector={"app": "web"},
        )
    )
    assert f.state is ContainerState.RUNNING
    assert ids(f.apply(CONTAINERS)) == ["c1aaaa"]
    created = ContainerFilter.from_pb(pb.ContainerFilter(state=pb.ContainerStateValue()))
    assert ids(created.apply(CONTAINERS)) == ["c2cccc"]


def test_container_stats_filter() -> None:
    f = ContainerFilter.from_pb(
        pb.ContainerStatsFilter(id="c3", pod_sandbox_id="bbb3", label_selector={"app": "db"})
    )
    assert ids(f.apply(CONTAINERS)) == ["c3dddd"]
    assert f.matches(CONTAINERS[3]) and not f.matches(CONTAINERS[0])
