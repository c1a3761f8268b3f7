# ruff: noqa: F811 - the fixtures imported from test_pods are parameters here
"""Every RPC of both CRI services, fed thousands of generated requests (tests/support/fuzz.py):
each answer is OK or a deliberate status (never UNKNOWN or INTERNAL, which mean a pinnace bug),
the daemon stays up, and no file appears outside its root, its state and the log directories
requested. A fixed seed makes a failure reproducible; PINNACE_FUZZ_SEED and
PINNACE_FUZZ_ROUNDS explore further."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_pods import PodEnv, pod_env, pod_images  # noqa: F401 - fixtures
from tests.support.fuzz import Pools, RequestGenerator

SEED = int(os.environ.get("PINNACE_FUZZ_SEED", "1414"))
ROUNDS = int(os.environ.get("PINNACE_FUZZ_ROUNDS", "1"))
# requests per RPC: fewer for the ones that really create things (each success is a pod or a
# container), more for the cheap ones
DEFAULT_PER_RPC = 70
PER_RPC = {
    "RunPodSandbox": 40,
    "CreateContainer": 40,
    "StartContainer": 25,
    "PullImage": 25,
    "ExecSync": 30,
    "UpdateRuntimeConfig": 20,
}
# a stream is read until its first message or 0.1 s: a few are enough to see a bad status
STREAMING_PER_RPC = 12
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
# statuses the client itself produces for a request it could not send (e.g. a message over
# its size limit): they say nothing about the daemon
CLIENT_SIDE = {grpc.StatusCode.RESOURCE_EXHAUSTED}


# run last, so the real objects the others aim at exist while they run
_DESTRUCTIVE = ("StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox",
                "RemoveImage")  # fmt: skip


def _methods() -> list[tuple[str, str, Any, Any, bool]]:
    out = []
    for service in ("RuntimeService", "ImageService"):
        desc = pb.DESCRIPTOR.services_by_name[service]
        for method in desc.methods:
            request = getattr(pb, method.input_type.name)
            response = getattr(pb, method.output_type.name)
            out.append((service, method.name, request, response, method.server_streaming))
    return sorted(out, key=lambda m: m[1] in _DESTRUCTIVE)


def _names_with(token: str, tops: list[Path], *, depth: int) -> list[str]:
    found = []

    def walk(directory: Path, level: int) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if token in entry.name:
                found.append(entry.path)
            if level < depth and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), level + 1)

    for top in tops:
        walk(top, 1)
    return found


def test_generated_requests_to_every_rpc(pod_env: PodEnv, tmp_path: Path) -> None:
    token = f"fz{uuid.uuid4().hex[:10]}"
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    # real objects, so generated ids reach past the lookups
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    ctr = pod_env.create(pod_id, pod, pod_env.container_config("target", ["sleep", "600"]))
    pod_env.start(ctr)
    pools = Pools(
        token=token,
        sandbox_ids=[pod_id, pod_id[:12]],
        container_ids=[ctr, ctr[:12]],
        images=list(pod_env.images.values()),
        allowed_dir=str(allowed),
    )
    log_dir = str(allowed / "pods")

    def pod_config() -> pb.PodSandboxConfig:
        config = pod_env.pod_config()
        config.log_directory = f"{log_dir}/{config.metadata.name}"
        return config

    def container_config() -> pb.ContainerConfig:
        return pod_env.container_config(f"c{uuid.uuid4().hex[:6]}", ["sleep", "1"])

    # valid requests, mutated a little, reach what a random request never passes
    bases = {
        "RunPodSandbox": lambda: pb.RunPodSandboxRequest(config=pod_config()),
        "CreateContainer": lambda: pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=container_config(), sandbox_config=pod
        ),
        "ExecSync": lambda: pb.ExecSyncRequest(container_id=ctr, cmd=["true"], timeout=5),
        "UpdateContainerResources": lambda: pb.UpdateContainerResourcesRequest(
            container_id=ctr, linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20)
        ),
        "PullImage": lambda: pb.PullImageRequest(
            image=pb.ImageSpec(image=pod_env.images["busybox"])
        ),
    }
    pod.log_directory = f"{log_dir}/{pod.metadata.name}"
    channel = grpc.insecure_channel(f"unix://{pod_env.daemon.socket}")
    outcomes: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    failures: list[str] = []
    try:
        for round_ in range(ROUNDS):
            rnd = random.Random(SEED + round_)
            gen = RequestGenerator(rnd, pools)
            for service, name, request_cls, response_cls, streaming in _methods():
                path = f"/runtime.v1.{service}/{name}"
                kind = channel.unary_stream if streaming else channel.unary_unary
                call = kind(
                    path,
                    request_serializer=request_cls.SerializeToString,
                    response_deserializer=response_cls.FromString,
                )
                started = time.monotonic()
                count = STREAMING_PER_RPC if streaming else PER_RPC.get(name, DEFAULT_PER_RPC)
                for _ in range(count):
                    base = bases.get(name)
                    if base is not None and rnd.random() < 0.6:
                        request = gen.mutate(base(), changes=rnd.choice((1, 2, 3)))
                    else:
                        request = gen.message(request_cls)
                    code = _invoke(call, request, streaming=streaming)
                    outcomes[f"{name} {code.name}"] += 1
                    if code in BAD:
                        failures.append(f"{name} -> {code.name}: {request!s:.600}")
                seconds[name] += time.monotonic() - started
    finally:
        channel.close()
    total = sum(outcomes.values())
    print(f"fuzz: {total} requests, seed {SEED}, rounds {ROUNDS}")
    for line, count in sorted(outcomes.items()):
        print(f"  {count:5d}  {line}")
    for name, spent in seconds.most_common(8):
        print(f"  {spent:6.2f} s  {name}")
    assert total >= 2000
    assert failures == [], "\n".join(failures[:20])
    assert pod_env.daemon.running
    assert pod_env.runtime.Version(pb.VersionRequest()).runtime_name == "pinnace"
    # nothing was created outside the root, the state and the requested log directories
    own = [str(pod_env.daemon.root), str(pod_env.daemon.state), str(allowed)]
    tops = [Path("/"), Path("/tmp"), Path("/etc"), Path("/var/lib"), Path("/run"), Path("/var/log")]
    escaped = [p for p in _names_with(token, tops, depth=2) if not p.startswith(tuple(own))]
    escaped += [
        p
        for p in _names_with(token, [tmp_path], depth=6)
        if not p.startswith(tuple(own)) and "allowed" not in p
    ]
    assert escaped == []


def _invoke(call: Any, request: Any, *, streaming: bool) -> grpc.StatusCode:
    try:
        if streaming:
            stream = call(request, timeout=0.1)
            try:
                for _ in stream:
                    break
            finally:
                stream.cancel()
            return grpc.StatusCode.OK
        call(request, timeout=15)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        code = error.code()
        if code in CLIENT_SIDE and "larger than max" in (error.details() or ""):
            return grpc.StatusCode.OK
        if streaming and code in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
            return grpc.StatusCode.OK
        if os.environ.get("PINNACE_FUZZ_DEBUG"):
            print(code.name, (error.details() or "")[:200])
        return code


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
