"""The pod lifecycle of bench_cri, one RPC at a time, with the CPU it costs, and A/B against
another pinnace source tree in alternating rounds (the machine is shared: wall figures are
noisy, CPU per lifecycle much less so).

    .venv/bin/python -m benchmarks.bench_lifecycle [--baseline DIR] [--rounds 4]
        [--lifecycles 10] [--network host|bridge] [--clients 0] [--writes 0]

``--baseline DIR`` runs a second pinnaced from the source tree DIR (for example
``git archive main | tar -x -C /tmp/pinnace-main``) beside this checkout's; rounds alternate
their order. Each round: ``--lifecycles`` sequential lifecycles (Run, Create, Start, Stop,
Remove container, Stop, Remove pod; as ``benchmarks/workload.py``), then, with ``--clients N``,
N concurrent clients doing 3 lifecycles each (pods/s). ``--writes N`` makes each sequential
lifecycle's container create N files in its writable layer first (not timed), so the removal
has a real layer to delete.

CPU per lifecycle is what the daemon and everything it spawns (conmon, runc, CNI plugins) used,
read from a cpuacct cgroup of the benchmark's own that the daemon is moved into once started
(the containers' processes are in their pods' cgroups and not counted), and the daemon's own
share from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.workload import (  # noqa: E402
    bridge_conflist,
    concurrent_lifecycles,
    container_config,
    cpu_seconds,
    pod_config,
)
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.iptables import hostport_chains, remove_hostport_chains  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

STEPS = (
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
)


# -- a cgroup that counts the CPU of a daemon and its children --------------------------------
class CpuCgroup:
    """A cpu accounting cgroup named ``pinnace-bench-<pid>-<label>`` (v1 cpuacct or v2)."""

    def __init__(self, label: str) -> None:
        name = f"pinnace-bench-{os.getpid()}-{label}"
        if Path("/sys/fs/cgroup/cgroup.controllers").exists():
            self.path = Path("/sys/fs/cgroup") / name
            self._v2 = True
        else:
            self.path = Path("/sys/fs/cgroup/cpuacct") / name
            self._v2 = False
        self.path.mkdir()

    def adopt(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def seconds(self) -> float:
        if self._v2:
            for line in (self.path / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
            return 0.0
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        parent = self.path.parent / "cgroup.procs"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = (self.path / "cgroup.procs").read_text().split()
            for pid in pids:  # processes that outlived their daemon are moved out, not killed
                with contextlib.suppress(OSError):
                    parent.write_text(pid)
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


@dataclass
class Side:
    name: str
    daemon: Pinnaced
    cgroup: CpuCgroup
    steps: dict[str, list[float]] = field(default_factory=dict)
    total: list[float] = field(default_factory=list)  # per-round p50 of whole lifecycles
    cpu: list[float] = field(default_factory=list)  # per-round CPU ms per lifecycle
    daemon_cpu: list[float] = field(default_factory=list)
    pods_per_s: list[float] = field(default_factory=list)
    cpu_concurrent: list[float] = field(default_factory=list)


def timed_lifecycle(
    stub: Any,
    image: str,
    network: str,
    into: dict[str, list[float]],
    *,
    writes: int = 0,
    cpu: Any = None,
) -> tuple[float, float]:
    """One lifecycle, each RPC's seconds appended to ``into[step]``: (the whole's seconds, CPU
    seconds to leave out). With ``writes``, an ExecSync between start and stop creates that
    many files in the container's writable layer; its time is left out of every figure and the
    CPU ``cpu()`` counted meanwhile (runc exec) is returned to be left out too."""
    config = pod_config(network)
    marks = [time.perf_counter()]
    left_out = [0.0, 0.0]

    def mark() -> None:
        marks.append(time.perf_counter())

    def fill(ctr: str) -> None:
        cpu0, t0 = cpu() if cpu else 0.0, time.perf_counter()
        script = f"mkdir /w && cd /w && seq 1 {writes} | xargs touch"
        reply = stub.ExecSync(
            pb.ExecSyncRequest(container_id=ctr, cmd=["sh", "-c", script], timeout=60), timeout=90
        )
        if reply.exit_code != 0:
            raise RuntimeError(f"filling the writable layer failed: {reply.stderr!r}")
        left_out[0] += time.perf_counter() - t0
        left_out[1] += (cpu() if cpu else 0.0) - cpu0
        marks[-1] = time.perf_counter()  # the next step starts after the fill

    pod = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id
    mark()
    ctr = stub.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod, config=container_config(image), sandbox_config=config
        ),
        timeout=60,
    ).container_id
    mark()
    stub.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
    mark()
    start_end = marks[-1]
    if writes:
        fill(ctr)
    stub.StopContainer(pb.StopContainerRequest(container_id=ctr, timeout=0), timeout=60)
    mark()
    stub.RemoveContainer(pb.RemoveContainerRequest(container_id=ctr), timeout=60)
    mark()
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    mark()
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    mark()
    for step, a, b in zip(STEPS, marks, marks[1:], strict=False):
        into.setdefault(step, []).append((start_end if step == "StartContainer" else b) - a)
    return marks[-1] - marks[0] - left_out[0], left_out[1]


def run_round(side: Side, image: str, args: argparse.Namespace) -> None:
    stub = side.daemon.runtime
    pid = side.daemon.pid or 0
    timed_lifecycle(stub, image, args.network, {}, writes=args.writes)  # warm
    cpu0, own0 = side.cgroup.seconds(), cpu_seconds(pid)
    runs = [
        timed_lifecycle(
            stub, image, args.network, side.steps, writes=args.writes, cpu=side.cgroup.seconds
        )
        for _ in range(args.lifecycles)
    ]
    cpu1, own1 = side.cgroup.seconds(), cpu_seconds(pid)
    left_out = sum(cpu for _, cpu in runs)
    side.total.append(statistics.median(took for took, _ in runs) * 1000)
    side.cpu.append((cpu1 - cpu0 - left_out) / args.lifecycles * 1000)
    # (with --writes the daemon's share still includes its part of the ExecSyncs)
    side.daemon_cpu.append((own1 - own0) / args.lifecycles * 1000)
    if args.clients:
        each = 3
        durations, wall = concurrent_lifecycles(
            f"unix://{side.daemon.socket}", image, args.network, clients=args.clients, each=each
        )
        side.pods_per_s.append(len(durations) / wall)
        side.cpu_concurrent.append((side.cgroup.seconds() - cpu1) / len(durations) * 1000)


@contextlib.contextmanager
def sides(base: Path, registry: Registry, args: argparse.Namespace) -> Iterator[list[Side]]:
    hosts = base / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    trees = [("this", REPO)]
    if args.baseline:
        trees.append(("baseline", Path(args.baseline).resolve()))
    chains_before = hostport_chains()
    with contextlib.ExitStack() as stack:
        stack.callback(remove_hostport_chains, keep=chains_before)
        out = []
        for n, (name, tree) in enumerate(trees):
            bridge = f"pnblc{n}"
            stack.callback(subprocess.run, ["ip", "link", "del", bridge], capture_output=True)
            (base / name).mkdir()
            daemon = Pinnaced(
                base / name,
                registry_hosts_dir=hosts,
                extra_args=["--log-level", "info"],
                source_root=tree,
            )
            daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
            (daemon.cni_conf_dir / "10-bench.conflist").write_text(
                bridge_conflist("bench", bridge, f"10.213.{240 + n}.0/24", base / f"ipam-{name}")
            )
            cgroup = CpuCgroup(name)
            stack.callback(cgroup.remove)
            stack.enter_context(daemon)
            cgroup.adopt(daemon.pid or 0)
            out.append(Side(name, daemon, cgroup))
        yield out


def report(all_sides: list[Side], args: argparse.Namespace) -> None:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):8.1f}" if values else "       -"

    print(f"network {args.network}, {args.rounds} rounds x {args.lifecycles} lifecycles")
    print(f"{'figure (median)':34}" + "".join(f"{s.name:>10}" for s in all_sides))
    for step in STEPS:
        cells = "".join(f"  {med([v * 1000 for v in s.steps.get(step, [])])}" for s in all_sides)
        print(f"{step + ' ms':34}{cells}")
    for label, attr in (
        ("lifecycle p50 ms (per round)", "total"),
        ("CPU ms / lifecycle (all)", "cpu"),
        ("  of which pinnaced", "daemon_cpu"),
        ("pods/s concurrent", "pods_per_s"),
        ("CPU ms / lifecycle concurrent", "cpu_concurrent"),
    ):
        print(f"{label:34}" + "".join(f"  {med(getattr(s, attr))}" for s in all_sides))
    for s in all_sides:
        print(f"{s.name}: lifecycle p50 per round {[round(v, 1) for v in s.total]}")
        print(f"{s.name}: CPU ms per round {[round(v, 1) for v in s.cpu]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="DIR")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--lifecycles", type=int, default=10)
    parser.add_argument("--network", choices=["host", "bridge"], default="host")
    parser.add_argument("--clients", type=int, default=0)
    parser.add_argument(
        "--writes",
        type=int,
        default=0,
        metavar="N",
        help="each container creates N files in its writable layer (an ExecSync left out of "
        "the figures) before it is stopped, so RemoveContainer has a layer to delete",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-lc-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            with sides(base, registry, args) as all_sides:
                for s in all_sides:
                    s.daemon.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                for n in range(args.rounds):
                    for s in all_sides[::-1] if n % 2 else all_sides:
                        print(f"round {n + 1}: {s.name}", file=sys.stderr)
                        run_round(s, image, args)
                report(all_sides, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
