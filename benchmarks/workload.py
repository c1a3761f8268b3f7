"""What the CRI benchmarks share: the pods they run (shaped as the kubelet sends them), the
lifecycle they time, percentiles, and what they read of a process in /proc.

A "host" pod uses the node's network (and, as the kubelet sends it, no hostname); a "bridge"
pod gets the network of the daemon's CNI config. Every pod has one busybox container running
``WORKLOAD_CMD`` in its own PID namespace, so pinnace needs no infra container for it.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from cri.api.runtime.v1 import api_pb2 as pb
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc

WORKLOAD_CMD = ["sleep", "3600"]
_TICK = os.sysconf("SC_CLK_TCK")


# -- figures -------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def timed(call: Callable[[], object], n: int) -> list[float]:
    """Seconds each of ``n`` calls took."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


# -- CRI requests ----------------------------------------------------------------------------------
def pod_config(network: str, *, namespace: str = "bench") -> pb.PodSandboxConfig:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace=namespace),
        hostname="" if network == "host" else name,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(
                    network=pb.NODE if network == "host" else pb.POD, pid=pb.CONTAINER
                )
            )
        ),
    )


def container_config(image: str) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="sleeper"),
        image=pb.ImageSpec(image=image),
        command=WORKLOAD_CMD,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )


def run_pod(stub: Any, image: str, network: str) -> tuple[str, str]:
    """RunPodSandbox, CreateContainer, StartContainer: (pod id, container id)."""
    config = pod_config(network)
    pod = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id
    ctr = stub.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=container_config(image), sandbox_config=config
        ),
        timeout=60,
    ).container_id
    stub.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
    return pod, ctr


def remove_pod(stub: Any, pod: str, ctr: str | None = None) -> None:
    """StopContainer (no grace), RemoveContainer, StopPodSandbox, RemovePodSandbox."""
    if ctr is not None:
        stub.StopContainer(pb.StopContainerRequest(container_id=ctr, timeout=0), timeout=60)
        stub.RemoveContainer(pb.RemoveContainerRequest(container_id=ctr), timeout=60)
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


def lifecycle(stub: Any, image: str, network: str) -> float:
    """Seconds one whole pod lifecycle took: run_pod then remove_pod."""
    start = time.perf_counter()
    pod, ctr = run_pod(stub, image, network)
    remove_pod(stub, pod, ctr)
    return time.perf_counter() - start


def concurrent_lifecycles(
    endpoint: str, image: str, network: str, *, clients: int, each: int
) -> tuple[list[float], float]:
    """``clients`` threads, each on its own channel to ``endpoint``, run ``each`` lifecycles:
    (every lifecycle's seconds, wall seconds of the whole). The first error is raised."""
    durations: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        channel = grpc.insecure_channel(endpoint)
        stub = pb_grpc.RuntimeServiceStub(channel)
        try:
            for _ in range(each):
                took = lifecycle(stub, image, network)
                with lock:
                    durations.append(took)
        except BaseException as exc:  # raised below
            errors.append(exc)
        finally:
            channel.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return durations, wall


# -- processes ------------------------------------------------------------------------------------
def rss_pss_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB; (0, 0) once it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User plus system CPU time thread ``tid`` of ``pid`` has used (``tid == pid``: the main
    thread, which runs pinnaced's event loop)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pids_whose_args(predicate: Callable[[list[str]], bool]) -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and predicate(cmdline(int(entry.name)))
    ]


def conmon_pids(state: Path) -> list[int]:
    """The conmons a pinnaced with this state directory started."""
    marker = str(state)
    return pids_whose_args(
        lambda a: bool(a) and a[0].endswith("conmon") and any(marker in x for x in a)
    )


def bridge_conflist(name: str, bridge: str, subnet: str, ipam_dir: Path) -> str:
    """The CNI bridge network the benchmarks give a runtime: bridge + host-local on ``subnet``,
    portmap for hostPorts, no masquerading (traffic stays on the node)."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "dataDir": str(ipam_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
    )


def push_bench_images(registry: Any) -> tuple[str, str]:
    """Push the benchmarks' workload image (busybox) and pause image (a sleeper) to a test
    registry; their references."""
    from tests.support import images
    from tests.support.push import push_image

    push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "bench/pause", "v1", pause)
    return f"{registry.host}/bench/busybox:v1", f"{registry.host}/bench/pause:v1"
