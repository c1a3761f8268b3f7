"""Replay the kubelet: every CRI call a real kubelet v1.36 made to containerd
(``../shared/kubelet-cri/``), sent to a real pinnaced in the recorded order (not at the recorded
times), with ids, image ids and digests, paths and cgroup parents rewritten to this test's own.
Each call must be accepted as the kubelet's was (same status code class) and each answer must
carry every field of containerd's answer that the kubelet reads, equal where the value is a
fact both runtimes share (states, names, labels, annotations, metadata, images, exit codes,
reasons, paths) and of the same type where it is not (timestamps, sizes, addresses, figures).

The recorded pods' images are built here and pushed under the recorded repositories; a
hosts.toml routes the recorded registry (``127.0.0.1:5000``) to the test registry, so image
names are the recorded ones and only digests differ.

Calls that depend on timing (a container the reference already saw exited) wait for the fact
through GetContainerEvents, with a deadline, and are then sent again.

The few fields where pinnace answers differently from containerd on purpose are listed in
``KNOWN_GAPS``, in one place, each with its reason (no work of another engineer is pending there
today); anything else failing fails the test with the method and the field path.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import kubelet
from tests.support.daemon import Pinnaced
from tests.support.registry import Registry
from tests.support.replay import Call, Mismatch, Rule, Substitutions, code_class, compare

# -- what the kubelet reads, by method ------------------------------------------------------
_TIMESTAMPS = {"created_at", "started_at", "finished_at", "timestamp"}


def _shape(*paths: str) -> dict[str, Rule]:
    return {p: Rule.SHAPE for p in paths}


RULES: dict[str, dict[str, Rule]] = {
    # the runtime's own name and version are its own; the API version is the contract
    "Version": _shape("runtime_name", "runtime_version"),
    # where the image store lives and how full it is differ between two nodes
    "ImageFsInfo": _shape("image_filesystems"),
    "ListImages": _shape("images[].size"),
    "ImageStatus": _shape("image.size"),
    "PodSandboxStatus": {
        **_shape("status.created_at", "status.network.ip"),
        # containerd's verbose info (not requested by the kubelet here)
        "info": Rule.IGNORE,
    },
    "ListPodSandbox": _shape("items[].created_at"),
    "ListContainers": _shape("containers[].created_at"),
    "ContainerStatus": {
        **_shape("status.created_at", "status.started_at", "status.finished_at"),
        "info": Rule.IGNORE,
    },
    "ListContainerStats": _shape(
        "stats[].cpu", "stats[].memory", "stats[].writable_layer", "stats[].swap"
    ),
    "ExecSync": {},
    # the streaming server's address and token are the runtime's own
    "Exec": _shape("url"),
}

# Calls (method, field path or "" for the whole call) pinnace answers differently from the
# recorded containerd: deliberate differences, each with its reason, or work another engineer
# owns and has not landed (none today). Tolerated and reported as long as they differ; an entry
# no replay meets any more is reported stale (see ``gaps_seen``), and should then go.
KNOWN_GAPS: dict[tuple[str, str], str] = {
    # Deliberate differences from containerd 1.6 in container stats (engineer `stats`):
    # - available_bytes is left unset without a memory limit (cAdvisor's rule: "unlimited"
    #   has no available figure) where containerd sends 0;
    # - usage_nano_cores is left unset on a container's first sample, so the kubelet computes
    #   the rate itself from usage_core_nano_seconds, where containerd sends 0 (which the
    #   kubelet then takes as the rate);
    # - major_page_faults is the container's own count: 0 here (an empty value), 1 in the
    #   recording: data, not a missing field.
    ("ListContainerStats", "stats[].memory.available_bytes"): (
        "stats: memory.available_bytes unset without a limit (as cAdvisor)"
    ),
    ("ListContainerStats", "stats[].memory.major_page_faults.value"): (
        "stats: memory.major_page_faults is 0 in this run"
    ),
    ("ListContainerStats", "stats[].cpu.usage_nano_cores"): (
        "stats: cpu.usage_nano_cores unset on the first sample (the kubelet computes it)"
    ),
}

# Gaps a replay meets only on some runs: the first-sample rule applies only when the kubelet's
# stats call is the first sample of a container, which depends on timing.
_SOMETIMES = {("ListContainerStats", "stats[].cpu.usage_nano_cores")}

# Recorded errors pinnace may answer better: containerd 1.6 had no RuntimeConfig.
_MAY_SUCCEED = {("RuntimeConfig", "UNIMPLEMENTED")}

_IMAGE_METHODS = {"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"}


def _request_type(method: str) -> Any:
    service = "ImageService" if method in _IMAGE_METHODS else "RuntimeService"
    descriptor = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return getattr(pb, descriptor.input_type.name)


# -- the replay -------------------------------------------------------------------------------
class Events:
    """GetContainerEvents read by a thread, as the kubelet's evented PLEG subscribes."""

    def __init__(self, runtime: Any) -> None:
        self._stream = runtime.GetContainerEvents(pb.GetEventsRequest())
        self.events: queue.Queue[Any] = queue.Queue()
        self._stopped: set[str] = set()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._stream.initial_metadata()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self.events.put(event)
        except grpc.RpcError:
            pass

    def wait_stopped(self, container_id: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while container_id not in self._stopped:
            event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if event.container_event_type == pb.CONTAINER_STOPPED_EVENT:
                self._stopped.add(event.container_id)

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(timeout=10)


@dataclass
class Replay:
    runtime: Any
    image: Any
    node: kubelet.KubeletNode
    subs: Substitutions
    events: Events
    failures: list[str] = field(default_factory=list)
    gaps_seen: list[str] = field(default_factory=list)
    calls: int = 0

    def _stub(self, method: str) -> Any:
        return getattr(self.image if method in _IMAGE_METHODS else self.runtime, method)

    def _send(self, method: str, request: Any) -> tuple[str, Any]:
        try:
            return "OK", self._stub(method)(request, timeout=60)
        except grpc.RpcError as error:
            return error.code().name, error

    def _gap(self, method: str, path: str) -> str | None:
        return KNOWN_GAPS.get((method, path))

    def run(self, calls: list[Call]) -> None:
        for n, call in enumerate(calls):
            self.calls += 1
            self.one(n, call)

    def one(self, n: int, call: Call) -> None:
        method = call.method
        body = self.subs.apply(copy.deepcopy(call.request))
        if method == "CreateContainer":
            self.node.prepare_mounts(body)
        request = json_format.ParseDict(body, _request_type(method)())
        code, answer = self._send(method, request)
        where = f"call {n} {method}"
        if code_class(code) != code_class(call.code):
            if (method, call.code) in _MAY_SUCCEED and code == "OK":
                return
            gap = self._gap(method, "")
            if gap is not None:
                self.gaps_seen.append(f"{where}: {gap}")
                return
            detail = answer.details() if isinstance(answer, grpc.RpcError) else ""
            self.failures.append(
                f"{where}: answered {code} ({detail}), the kubelet got {call.code}"
            )
            return
        if code != "OK" or call.response is None:
            return
        self._learn(call, answer)
        mismatches = self._compare(call, answer)
        if mismatches and self._await_exits(mismatches):
            _, answer = self._send(method, request)
            mismatches = self._compare(call, answer)
        deadline = time.monotonic() + 10
        while _measuring(mismatches) and time.monotonic() < deadline:
            # writable layers are measured in the background right after CreateContainer;
            # the kubelet's next poll (a second later in the recording) sees the figure
            _, answer = self._send(method, request)
            mismatches = self._compare(call, answer)
        for m in mismatches:
            gap = self._gap(method, m.path)
            if gap is not None:
                self.gaps_seen.append(f"{where}: {gap}")
            else:
                self.failures.append(f"{where}: {m.path}: {m.why}")

    def _learn(self, call: Call, answer: Any) -> None:
        """The ids pinnace chose stand for the recorded ones from here on."""
        if call.method == "RunPodSandbox":
            self.subs.add(call.response["pod_sandbox_id"], answer.pod_sandbox_id)
        elif call.method == "CreateContainer":
            self.subs.add(call.response["container_id"], answer.container_id)

    def _compare(self, call: Call, answer: Any) -> list[Mismatch]:
        reference = self.subs.apply(copy.deepcopy(call.response))
        actual = json_format.MessageToDict(answer, preserving_proto_field_name=True)
        return compare(call.method, reference, actual, rules=RULES.get(call.method, {}))

    def _await_exits(self, mismatches: list[Mismatch]) -> bool:
        """Where the reference saw a container exited that pinnace still runs (the kubelet's
        calls ran later than ours), wait for its exit; True when there was one to wait for."""
        waited = False
        for m in mismatches:
            if m.path.endswith("state") and "CONTAINER_EXITED" in m.why:
                for container in self._running_containers():
                    self.events.wait_stopped(container)
                    waited = True
        return waited

    def _running_containers(self) -> list[str]:
        listed = self.runtime.ListContainers(
            pb.ListContainersRequest(
                filter=pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
            )
        ).containers
        return [c.id for c in listed]


def _measuring(mismatches: list[Mismatch]) -> bool:
    """Only writable-layer figures not measured yet (a fact that arrives on its own)."""
    open_ = [m for m in mismatches if (m.method, m.path) not in KNOWN_GAPS]
    return bool(open_) and all(
        m.path.startswith("stats[].writable_layer.") and "missing" in m.why for m in open_
    )


@pytest.fixture(scope="module")
def kubelet_images(registry: Registry) -> dict[str, str]:
    return kubelet.push_kubelet_images(registry.url)


@pytest.fixture
def replay(
    pinnaced: Any, kubelet_images: dict[str, str], registry: Registry, tmp_path: Path
) -> Iterator[Replay]:
    hosts = tmp_path / "certs.d"
    kubelet.route_recorded_registry(hosts, registry.url)
    daemon: Pinnaced = pinnaced(
        config_text=f'[images]\nsandbox_image = "{kubelet_images["pause"]}"\n',
        registry_hosts_dir=hosts,
        start=False,
    )
    network = kubelet.BridgeNetwork.make(daemon.cni_conf_dir, tmp_path / "cni-data")
    node = kubelet.KubeletNode.make(tmp_path / "node")
    daemon.start()
    runtime, image = daemon.clients()
    events = Events(runtime)
    try:
        subs = node.substitutions()
        for ref in kubelet_images.values():
            image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
        _map_images(image, subs)
        yield Replay(runtime, image, node, subs, events)
    finally:
        events.close()
        for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
        network.teardown()
        assert node.remove_cgroups() == []


def _map_images(image: Any, subs: Substitutions) -> None:
    """The recorded image ids and repo digests → ours, by the recorded ListImages answer."""
    recorded = {}
    for name in ("static-pods.jsonl", "guaranteed-pod.jsonl"):
        for call in kubelet.iter_calls(kubelet.load(name), "ListImages"):
            for img in (call.response or {}).get("images", []):
                recorded[img["repo_tags"][0]] = img
    for tag, img in recorded.items():
        ours = image.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=tag))).image
        assert ours.id, f"image {tag} was not pulled"
        subs.add(img["id"], ours.id)
        for rec_digest in img.get("repo_digests", []):
            repo = rec_digest.split("@", 1)[0]
            mine = [d for d in ours.repo_digests if d.startswith(repo + "@")]
            if mine:
                subs.add(rec_digest, mine[0])


@pytest.fixture(scope="module")
def gaps_seen() -> Iterator[set[str]]:
    """The known gaps the module's replays met; one no replay met has landed meanwhile, and
    its entry should go so that the replay holds pinnace to it (a warning says so)."""
    seen: set[str] = set()
    yield seen
    stale = sorted({text for key, text in KNOWN_GAPS.items() if key not in _SOMETIMES} - seen)
    if stale:
        warnings.warn(f"known gaps no replay met: {stale}", stacklevel=1)


@pytest.mark.parametrize("recording", ["static-pods.jsonl", "guaranteed-pod.jsonl"])
def test_replay_the_kubelet(replay: Replay, recording: str, gaps_seen: set[str]) -> None:
    calls = kubelet.load(recording)
    replay.run(calls)
    assert replay.calls == len(calls)
    report = "\n".join(replay.failures[:60])
    if replay.gaps_seen:
        report += "\nknown gaps (deliberate):\n" + "\n".join(sorted(set(replay.gaps_seen)))
    assert replay.failures == [], f"{len(replay.failures)} differences:\n{report}"
    gaps_seen.update(g.split(": ", 1)[1] for g in replay.gaps_seen)
