"""ListPodSandbox during a pod-creation storm, pinnace beside a reference runtime: is the List
answered promptly while N clients create and remove pods, and what does the daemon spend?

    .venv/bin/python -m benchmarks.bench_storm [--clients 1,8,32] [--pods 64] [--rounds 2]
                                               [--reference containerd] [--baseline-tree DIR]

For each client count, in rounds that alternate the runtimes' order: ``--pods`` host-network
pod lifecycles (``workload.lifecycle``) shared among the clients, each on its own channel,
while one more client calls ListPodSandbox every 20 ms. Printed: pods/s, errors, the List
p50/p99/max during the storm, the daemon's CPU over the storm (% of one core, all threads) and,
for pinnaced, that of its event-loop thread alone (the thread that runs every handler). On a
machine whose two cores the storm's runc processes saturate, the List waits for a CPU more than
for the daemon; the reference's figures in the same storm say how much of the p99 that is.
``--baseline-tree DIR`` adds a pinnaced running the sources in DIR (A/B of a change).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402

from benchmarks import reference  # noqa: E402
from benchmarks.workload import (  # noqa: E402
    cpu_seconds,
    lifecycle,
    pct,
    push_bench_images,
    thread_cpu_seconds,
)
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


@dataclass
class Target:
    name: str
    socket: Path
    pid: int
    loop_thread: bool  # pinnaced: its main thread runs the event loop


def storm(target: Target, image: str, clients: int, total: int) -> str:
    """One storm; its table row."""
    each = max(1, total // clients)
    errors: list[BaseException] = []
    samples: list[float] = []
    done = threading.Event()
    address = f"unix://{target.socket}"

    def client() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.RuntimeServiceStub(channel)
            try:
                for _ in range(each):
                    lifecycle(stub, image, "host")
            except BaseException as exc:  # counted in the row
                errors.append(exc)

    def sampler() -> None:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.RuntimeServiceStub(channel)
            while not done.wait(0.02):
                start = time.perf_counter()
                stub.ListPodSandbox(pb.ListPodSandboxRequest(filter={}), timeout=30)
                samples.append(time.perf_counter() - start)

    watcher = threading.Thread(target=sampler)
    watcher.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu_before = cpu_seconds(target.pid)
    loop_before = thread_cpu_seconds(target.pid, target.pid) if target.loop_thread else 0.0
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    cpu = (cpu_seconds(target.pid) - cpu_before) / wall * 100
    loop = "-"
    if target.loop_thread:
        loop = f"{(thread_cpu_seconds(target.pid, target.pid) - loop_before) / wall * 100:.0f}"
    row = (
        f"| {target.name} | {clients} | {clients * each / wall:.1f} | {len(errors)} "
        f"| {statistics.median(samples) * 1e3:.1f} / {pct(samples, 0.99) * 1e3:.1f} "
        f"/ {max(samples) * 1e3:.1f} | {cpu:.0f} | {loop} |"
    )
    if errors:
        row += f" first error: {errors[0]}"
    return row


@contextlib.contextmanager
def _targets(base: Path, registry: Registry, args: argparse.Namespace) -> Iterator[list[Target]]:
    hosts = base / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    pause = f"{registry.host}/bench/pause:v1"
    trees = [("pinnace", REPO)]
    if args.baseline_tree is not None:
        trees.append(("baseline", args.baseline_tree.resolve()))
    with contextlib.ExitStack() as stack:
        targets = []
        for name, tree in trees:
            (base / name).mkdir()
            daemon = Pinnaced(
                base / name,
                registry_hosts_dir=hosts,
                extra_args=["--log-level", "info"],
                source_root=tree,
            )
            stack.enter_context(daemon)
            targets.append(Target(name, daemon.socket, daemon.pid or 0, loop_thread=True))
        if args.reference == "containerd":
            reference.ensure_installed()
            (base / "containerd").mkdir()
            ctd = reference.Containerd(base / "containerd", sandbox_image=pause, hosts_dir=hosts)
            stack.enter_context(ctd)
            targets.append(Target("containerd", ctd.socket, ctd.pid or 0, loop_thread=False))
        yield targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--pods", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reference", choices=["containerd", "none"], default="none")
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()
    clients = args.clients or [1, 8, 32]
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-storm-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            image, _pause = push_bench_images(registry)
            with _targets(base, registry, args) as targets:
                for t in targets:
                    with grpc.insecure_channel(f"unix://{t.socket}") as channel:
                        pb_grpc.ImageServiceStub(channel).PullImage(
                            pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300
                        )
                print(
                    "| runtime | clients | pods/s | errors | ListPodSandbox p50 / p99 / max ms "
                    "| daemon CPU % | loop thread CPU % |"
                )
                print("| --- | --- | --- | --- | --- | --- | --- |")
                for n in range(args.rounds):
                    for t in targets[::-1] if n % 2 else targets:
                        for c in clients:
                            print(storm(t, image, c, args.pods), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
