"""Cost as work grows: what a node with N running pods pays for the kubelet's polling, for
idling, for memory and for a daemon restart; and how creation scales with concurrent clients.

    .venv/bin/python -m benchmarks.bench_scale [--steps 10,50,100,200] [--restart-at 100]
                                               [--clients 1,8,32] [--storm-pods 64]

For each step (host-network pods, one busybox container each, grown from the previous step):
- ListPodSandbox and ListContainers p50/p99 over 300 calls;
- a kubelet-style relist: ListPodSandbox + ListContainers, then PodSandboxStatus for every pod
  and ContainerStatus for every container (what PLEG and the status manager do each second),
  wall time p50/p99 over 10 relists;
- pinnaced CPU while idle (utime + stime over 10 s, % of one core), its RSS, and the memory added
  per pod (daemon growth plus each pod's conmon, RSS);
- at ``--restart-at`` pods: SIGTERM, start again, time until the CRI answers and lists every pod.
Then a storm: ``--storm-pods`` pod lifecycles by 1, 8 and 32 concurrent clients while a sampler
calls ListPodSandbox every 20 ms: pods/s, errors, ListPodSandbox p99 during the storm.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from benchmarks.workload import (  # noqa: E402
    conmon_pids,
    cpu_seconds,
    lifecycle,
    pct,
    remove_pod,
    rss_pss_kb,
    run_pod,
    timed,
)
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, cri_clients, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def relist(rt: Any) -> None:
    pods = rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter())).items
    ctrs = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter())).containers
    for p in pods:
        rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=p.id))
    for c in ctrs:
        rt.ContainerStatus(pb.ContainerStatusRequest(container_id=c.id))


def measure_step(daemon: Pinnaced, n: int, baseline_rss: float, idle_s: float) -> None:
    rt = daemon.runtime
    lp = timed(lambda: rt.ListPodSandbox(pb.ListPodSandboxRequest(filter={})), 300)
    lc = timed(lambda: rt.ListContainers(pb.ListContainersRequest(filter={})), 300)
    rl = timed(lambda: relist(rt), 10)
    pid = daemon.pid or 0
    before = cpu_seconds(pid)
    # Idle means idle: nothing to await, the daemon is watched for a fixed span.
    time.sleep(idle_s)
    idle = (cpu_seconds(pid) - before) / idle_s * 100
    rss = rss_pss_kb(pid)[0] / 1024
    conmons = sum(rss_pss_kb(c)[0] for c in conmon_pids(daemon.state)) / 1024
    per_pod = (max(0.0, rss - baseline_rss) + conmons) / n
    print(
        f"| {n:4d} | {statistics.median(lp) * 1e3:.2f} / {pct(lp, 0.99) * 1e3:.2f} "
        f"| {statistics.median(lc) * 1e3:.2f} / {pct(lc, 0.99) * 1e3:.2f} "
        f"| {statistics.median(rl) * 1e3:.1f} / {pct(rl, 0.99) * 1e3:.1f} "
        f"| {idle:.2f} | {rss:.1f} | {per_pod:.2f} |",
        flush=True,
    )


def restart_to_ready(daemon: Pinnaced, expected: int) -> float:
    daemon.stop()
    start = time.perf_counter()
    daemon.start()
    listed = len(daemon.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items)
    took = time.perf_counter() - start
    if listed != expected:
        raise RuntimeError(f"after restart {listed} pods are listed, {expected} exist")
    return took


def storm(daemon: Pinnaced, image: str, clients: int, total: int) -> None:
    each = max(1, total // clients)
    errors: list[BaseException] = []
    samples: list[float] = []
    done = threading.Event()

    def client() -> None:
        channel = grpc.insecure_channel(f"unix://{daemon.socket}")
        rt, _ = cri_clients(daemon.socket, channel=channel)
        try:
            for _ in range(each):
                lifecycle(rt, image, "host")
        except BaseException as exc:  # counted below
            errors.append(exc)
        finally:
            channel.close()

    def sampler() -> None:
        channel = grpc.insecure_channel(f"unix://{daemon.socket}")
        rt, _ = cri_clients(daemon.socket, channel=channel)
        while not done.wait(0.02):
            start = time.perf_counter()
            rt.ListPodSandbox(pb.ListPodSandboxRequest(filter={}))
            samples.append(time.perf_counter() - start)
        channel.close()

    watcher = threading.Thread(target=sampler)
    watcher.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    print(
        f"| {clients:3d} | {clients * each} | {clients * each / wall:.1f} | {len(errors)} "
        f"| {statistics.median(samples) * 1e3:.2f} / {pct(samples, 0.99) * 1e3:.2f} |",
        flush=True,
    )
    if errors:
        print(f"  first error: {errors[0]}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--restart-at", type=int, default=100)
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--storm-pods", type=int, default=64)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    steps = args.steps or [10, 50, 100, 200]
    clients = args.clients or [1, 8, 32]

    with tempfile.TemporaryDirectory(prefix="pinnace-bench-scale-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            hosts_toml(base / "certs.d", registry.host, plain_http=True)
            (base / "d").mkdir()
            daemon = Pinnaced(
                base / "d", registry_hosts_dir=base / "certs.d", extra_args=["--log-level", "info"]
            )
            with daemon:
                daemon.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                baseline = rss_pss_kb(daemon.pid or 0)[0] / 1024
                pods: list[tuple[str, str]] = []
                print(
                    "| pods | ListPodSandbox p50/p99 ms | ListContainers p50/p99 ms "
                    "| relist p50/p99 ms | idle CPU % | RSS MB | MB per pod |"
                )
                print("| --- | --- | --- | --- | --- | --- | --- |")
                restart: float | None = None
                for n in steps:
                    while len(pods) < n:
                        pods.append(run_pod(daemon.runtime, image, "host"))
                    measure_step(daemon, n, baseline, args.idle_seconds)
                    if n == args.restart_at:
                        restart = restart_to_ready(daemon, n)
                if restart is not None:
                    print(f"restart to ready with {args.restart_at} pods: {restart * 1e3:.0f} ms")
                for pod, ctr in pods:
                    remove_pod(daemon.runtime, pod, ctr)
                print("| clients | pods | pods/s | errors | ListPodSandbox during p50/p99 ms |")
                print("| --- | --- | --- | --- | --- |")
                for n in clients:
                    storm(daemon, image, n, args.storm_pods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
