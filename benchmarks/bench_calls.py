"""What one polled CRI call costs: round trip and the daemon's CPU per call, for pinnaced and,
side by side, a reference runtime, with ``--pods`` host-network pods running in each.

    .venv/bin/python -m benchmarks.bench_calls [--reference containerd] [--pods 30]
                                               [--calls 2000] [--rounds 2] [--baseline-tree DIR]

``--baseline-tree DIR`` adds a second pinnaced running the sources in DIR (for an A/B of a
change: ``git archive main | tar -x -C DIR``); its column is named "baseline".

For Version, ListPodSandbox, ListContainers, PodSandboxStatus and ContainerStatus (of one pod
and its container) and the kubelet-style relist (``bench_scale.relist``: both Lists, then a
Status call per object), in rounds that alternate the runtimes' order: p50 and p99 of the round
trip, and the daemon's CPU (utime + stime of its process, all threads, from /proc/<pid>/stat)
divided by the calls. On a busy machine the CPU per call is the steadier figure; the round
trip also holds the client's own cost (a synchronous grpc-python stub, 0.2 to 0.35 ms CPU a
call: ``benchmarks/bench_grpc_floor.py`` measures it with bare servers).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import reference  # noqa: E402
from benchmarks.bench_scale import relist  # noqa: E402
from benchmarks.workload import cpu_seconds, pct, push_bench_images, remove_pod, run_pod, timed  # noqa: E402
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


@dataclass
class Target:
    name: str
    runtime: Any
    image: Any
    pid: int
    pods: list[tuple[str, str]] = field(default_factory=list)
    # call name -> [(p50 s, p99 s, daemon CPU s per call)] one per round
    rounds: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)


def calls(target: Target) -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (one call, how many CRI calls it makes)."""
    rt = target.runtime
    pod, ctr = target.pods[0]
    n = len(target.pods)
    return {
        "Version": (lambda: rt.Version(pb.VersionRequest()), 1),
        "ListPodSandbox": (lambda: rt.ListPodSandbox(pb.ListPodSandboxRequest()), 1),
        "ListContainers": (lambda: rt.ListContainers(pb.ListContainersRequest()), 1),
        "PodSandboxStatus": (
            lambda: rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod)),
            1,
        ),
        "ContainerStatus": (
            lambda: rt.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr)),
            1,
        ),
        "relist": (lambda: relist(rt), 2 + 2 * n),
    }


def measure(target: Target, count: int) -> None:
    for name, (call, per) in calls(target).items():
        n = max(5, count // per)
        timed(call, max(1, n // 10))  # warm
        before = cpu_seconds(target.pid)
        took = timed(call, n)
        cpu = (cpu_seconds(target.pid) - before) / n
        target.rounds.setdefault(name, []).append((pct(took, 0.5), pct(took, 0.99), cpu))


def print_table(targets: list[Target]) -> None:
    """Medians over the rounds; ratios are pinnace's figure over each other target's."""
    head = "| call |" + "".join(f" {t.name} p50 / p99 ms | {t.name} CPU ms/call |" for t in targets)
    head += "".join(f" p50 / CPU vs {t.name} |" for t in targets[1:])
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for name in targets[0].rounds:
        row = f"| {name} |"
        meds = []
        for t in targets:
            rs = t.rounds[name]
            p50 = statistics.median(r[0] for r in rs)
            p99 = statistics.median(r[1] for r in rs)
            cpu = statistics.median(r[2] for r in rs)
            meds.append((p50, cpu))
            row += f" {p50 * 1e3:.3f} / {p99 * 1e3:.3f} | {cpu * 1e3:.3f} |"
        for p50, cpu in meds[1:]:
            cpu_ratio = f"{meds[0][1] / cpu:.2f}" if cpu else "-"
            row += f" {meds[0][0] / p50:.2f} / {cpu_ratio} |"
        print(row)


@contextlib.contextmanager
def _targets(base: Path, registry: Registry, args: argparse.Namespace) -> Iterator[list[Target]]:
    hosts = base / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    pause = f"{registry.host}/bench/pause:v1"
    with contextlib.ExitStack() as stack:
        (base / "pinnace").mkdir()
        daemon = Pinnaced(
            base / "pinnace",
            registry_hosts_dir=hosts,
            extra_args=["--log-level", "info"],
            config_text=f'[images]\nsandbox_image = "{pause}"\n',
        )
        stack.enter_context(daemon)
        targets = [Target("pinnace", *daemon.clients(), pid=daemon.pid or 0)]
        if args.baseline_tree is not None:
            (base / "baseline").mkdir()
            old = Pinnaced(
                base / "baseline",
                registry_hosts_dir=hosts,
                extra_args=["--log-level", "info"],
                config_text=f'[images]\nsandbox_image = "{pause}"\n',
                source_root=args.baseline_tree.resolve(),
            )
            stack.enter_context(old)
            targets.append(Target("baseline", *old.clients(), pid=old.pid or 0))
        if args.reference == "containerd":
            reference.ensure_installed()
            (base / "containerd").mkdir()
            ctd = reference.Containerd(base / "containerd", sandbox_image=pause, hosts_dir=hosts)
            stack.enter_context(ctd)
            targets.append(Target("containerd", *ctd.clients(), pid=ctd.pid or 0))
        yield targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", choices=["containerd", "none"], default="none")
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-calls-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            image, _pause = push_bench_images(registry)
            with _targets(base, registry, args) as targets:
                try:
                    for t in targets:
                        t.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                        t.pods = [run_pod(t.runtime, image, "host") for _ in range(args.pods)]
                    for n in range(args.rounds):
                        for t in targets[::-1] if n % 2 else targets:
                            print(f"round {n + 1}: {t.name}", file=sys.stderr, flush=True)
                            measure(t, args.calls)
                    print_table(targets)
                finally:
                    for t in targets:
                        for pod, ctr in t.pods:
                            remove_pod(t.runtime, pod, ctr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
