"""A kubelet-style relist against a real pinnaced with many pods: what the kubelet's PLEG and
stats housekeeping ask every second, as the recorded kubelet did
(``../shared/kubelet-cri/static-pods.jsonl``: ListPodSandbox + ListContainers every second,
ListContainerStats and ImageFsInfo beside them).

    .venv/bin/python -m benchmarks.bench_relist [--pods 50] [--seconds 30] [--files 2000]

Pods use the node's network (the relist does not touch the network). Two phases of
``--seconds`` each, one relist per second:

- **idle layers**: containers have written nothing;
- **busy layers**: every container has written ``--files`` files into its rootfs, so the
  background writable-layer accounting walks ``pods * files`` entries, ``layer_file_budget``
  per refresh, a refresh per second (``layer_refresh_interval = "1s"``) for the whole phase.

Printed per phase: p50/p99/max latency of each call, and pinnaced's CPU (user+system of the
daemon process, all threads, and of its writable-layer walker process, over the phase's wall
time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

CALLS = ("ListPodSandbox", "ListContainers", "ListContainerStats", "ImageFsInfo")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and of its live children (the writable-layer walker)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _pod(runtime: Any, image: str) -> str:
    name = f"relist-{uuid.uuid4().hex[:8]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="bench"),
        hostname=name,
        labels={"io.kubernetes.pod.name": name},
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER)
            )
        ),
    )
    pod = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    ctr = runtime.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod.pod_sandbox_id,
            sandbox_config=config,
            config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="main"),
                image=pb.ImageSpec(image=image),
                command=["sleep", "3600"],
                linux=pb.LinuxContainerConfig(
                    security_context=pb.LinuxContainerSecurityContext(
                        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                    )
                ),
            ),
        ),
        timeout=60,
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
    return str(ctr)


def _relist(runtime: Any, image_api: Any, seconds: int) -> dict[str, list[float]]:
    """One relist per second for ``seconds``, each call timed (the kubelet's schedule)."""
    took: dict[str, list[float]] = {name: [] for name in CALLS}
    calls = {
        "ListPodSandbox": lambda: runtime.ListPodSandbox(pb.ListPodSandboxRequest()),
        "ListContainers": lambda: runtime.ListContainers(pb.ListContainersRequest()),
        "ListContainerStats": lambda: runtime.ListContainerStats(pb.ListContainerStatsRequest()),
        "ImageFsInfo": lambda: image_api.ImageFsInfo(pb.ImageFsInfoRequest()),
    }
    tick = threading.Event()  # never set: wait() is the once-a-second schedule itself
    start = time.monotonic()
    for n in range(seconds):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            took[name].append(time.perf_counter() - began)
        tick.wait(max(0.0, start + n + 1 - time.monotonic()))
    return took


def _report(phase: str, took: dict[str, list[float]], cpu: float, wall: float) -> None:
    print(f"{phase}: pinnaced CPU {100 * cpu / wall:5.1f} % of one core over {wall:.0f} s")
    for name, values in took.items():
        print(
            f"  {name:<19} x {len(values)}: p50 {statistics.median(values) * 1000:6.2f} ms"
            f"  p99 {_pct(values, 0.99) * 1000:6.2f} ms  max {max(values) * 1000:6.2f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-relist-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            box = images.busybox_image()
            push_image(registry.url, "bench/busybox", "v1", box)
            image = f"{registry.host}/bench/busybox:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            (base / "d").mkdir()
            config = '[stats]\nlayer_refresh_interval = "1s"\n'
            daemon = Pinnaced(base / "d", registry_hosts_dir=hosts, config_text=config)
            with daemon:
                runtime, image_api = daemon.clients()
                image_api.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                containers = [_pod(runtime, image) for _ in range(args.pods)]
                print(f"{args.pods} pods running (one busybox container each)")
                pid = daemon.pid or 0
                for phase in ("idle layers", "busy layers"):
                    if phase == "busy layers":
                        script = (
                            f"mkdir -p /data && cd /data && i=0; while [ $i -lt {args.files} ];"
                            " do echo $i > f$i; i=$((i+1)); done"
                        )
                        for ctr in containers:
                            runtime.ExecSync(
                                pb.ExecSyncRequest(container_id=ctr, cmd=["sh", "-c", script]),
                                timeout=120,
                            )
                        print(f"every container wrote {args.files} files")
                    cpu0, wall0 = _cpu_seconds(pid), time.monotonic()
                    took = _relist(runtime, image_api, args.seconds)
                    _report(phase, took, _cpu_seconds(pid) - cpu0, time.monotonic() - wall0)
                inodes = [
                    s.writable_layer.inodes_used.value
                    for s in runtime.ListContainerStats(pb.ListContainerStatsRequest()).stats
                ]
                print(
                    f"writable layers measured: {sum(1 for i in inodes if i > args.files)}"
                    f" of {len(inodes)} show more than {args.files} inodes"
                )
                for sandbox in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
