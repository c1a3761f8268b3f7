"""Pod lifecycle, ExecSync and List latency, and memory per pod, through the CRI of a real
pinnaced with runc and conmon, on this machine.

    .venv/bin/python -m benchmarks.bench_pods [--runs 20] [--clients 8] [--pods 50]
                                              [--network host|bridge|both]

Lifecycle = RunPodSandbox, CreateContainer, StartContainer (busybox sleep), StopContainer,
RemoveContainer, StopPodSandbox, RemovePodSandbox. "host" pods use the node's network; "bridge"
pods get a veth on a test bridge (CNI bridge + host-local + portmap, no masquerade). Memory: the
daemon's RSS with --pods pods running, and what each pod adds: its conmon (RSS and PSS), plus
the daemon's own growth.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from benchmarks.workload import (  # noqa: E402
    concurrent_lifecycles,
    conmon_pids,
    lifecycle,
    ms,
    pct,
    rss_pss_kb,
    run_pod,
)
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.iptables import hostport_chains, remove_hostport_chains  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

BRIDGE = "pnbench0"


def report_concurrent(socket: Path, image: str, network: str, clients: int, each: int) -> None:
    durations, wall = concurrent_lifecycles(
        f"unix://{socket}", image, network, clients=clients, each=each
    )
    print(
        f"  {clients} clients x {each}: {len(durations) / wall:6.1f} pods/s, "
        f"p50 {ms(statistics.median(durations))} ms, p90 {ms(pct(durations, 0.9))} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--network", choices=["host", "bridge", "both"], default="both")
    args = parser.parse_args()
    networks = ["host", "bridge"] if args.network == "both" else [args.network]
    chains_before = hostport_chains()

    with tempfile.TemporaryDirectory(prefix="pinnace-bench-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            box = images.busybox_image()
            push_image(registry.url, "bench/busybox", "v1", box)
            image = f"{registry.host}/bench/busybox:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            (base / "d").mkdir()
            daemon = Pinnaced(base / "d", registry_hosts_dir=hosts)
            daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
            (daemon.cni_conf_dir / "10-bench.conflist").write_text(
                json.dumps(
                    {
                        "cniVersion": "1.0.0",
                        "name": "bench",
                        "plugins": [
                            {
                                "type": "bridge",
                                "bridge": BRIDGE,
                                "isGateway": True,
                                "ipMasq": False,
                                "ipam": {
                                    "type": "host-local",
                                    "ranges": [[{"subnet": "10.213.250.0/24"}]],
                                    "dataDir": str(base / "ipam"),
                                },
                            },
                            {"type": "portmap", "capabilities": {"portMappings": True}},
                        ],
                    }
                )
            )
            try:
                with daemon:
                    runtime, image_api = daemon.clients()
                    image_api.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                    for network in networks:
                        lifecycle(runtime, image, network)  # warm up
                        took = [lifecycle(runtime, image, network) for _ in range(args.runs)]
                        print(
                            f"lifecycle ({network} network), sequential x {args.runs}: "
                            f"p50 {ms(statistics.median(took))} ms, "
                            f"p90 {ms(pct(took, 0.9))} ms"
                        )
                        report_concurrent(
                            daemon.socket, image, network, args.clients, max(2, args.runs // 4)
                        )

                    pod, ctr = run_pod(runtime, image, "host")
                    execs = []
                    for _ in range(max(30, args.runs)):
                        start = time.perf_counter()
                        runtime.ExecSync(
                            pb.ExecSyncRequest(container_id=ctr, cmd=["true"], timeout=10)
                        )
                        execs.append(time.perf_counter() - start)
                    print(
                        f"ExecSync 'true' x {len(execs)}: p50 {ms(statistics.median(execs))} ms,"
                        f" p90 {ms(pct(execs, 0.9))} ms"
                    )
                    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))

                    rss_before, _ = rss_pss_kb(daemon.pid or 0)
                    pods = [run_pod(runtime, image, "bridge") for _ in range(args.pods)]
                    lists: dict[str, list[float]] = {"ListPodSandbox": [], "ListContainers": []}
                    for _ in range(200):
                        start = time.perf_counter()
                        runtime.ListPodSandbox(pb.ListPodSandboxRequest())
                        lists["ListPodSandbox"].append(time.perf_counter() - start)
                        start = time.perf_counter()
                        runtime.ListContainers(pb.ListContainersRequest())
                        lists["ListContainers"].append(time.perf_counter() - start)
                    for name, values in lists.items():
                        print(
                            f"{name} with {args.pods} running pods x 200: "
                            f"p50 {statistics.median(values) * 1000:.2f} ms, "
                            f"p90 {pct(values, 0.9) * 1000:.2f} ms"
                        )
                    rss_after, pss_daemon = rss_pss_kb(daemon.pid or 0)
                    conmons = conmon_pids(daemon.state)
                    figures = [rss_pss_kb(pid) for pid in conmons]
                    conmon_rss = sum(r for r, _ in figures)
                    conmon_pss = sum(p for _, p in figures)
                    growth = max(0, rss_after - rss_before)
                    print(
                        f"memory with {args.pods} pods: daemon RSS {rss_after / 1024:.1f} MB "
                        f"(PSS {pss_daemon / 1024:.1f} MB, +{growth / 1024:.1f} MB for the pods); "
                        f"{len(conmons)} conmons"
                    )
                    print(
                        f"  added per pod: conmon RSS {conmon_rss / len(pods) / 1024:.2f} MB, "
                        f"PSS {conmon_pss / len(pods) / 1024:.2f} MB; daemon growth "
                        f"{growth / len(pods) / 1024:.2f} MB; no infra container; total RSS "
                        f"{(conmon_rss + growth) / len(pods) / 1024:.2f} MB"
                    )
                    for pod_id, _ctr in pods:
                        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
            finally:
                subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
                remove_hostport_chains(keep=chains_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
