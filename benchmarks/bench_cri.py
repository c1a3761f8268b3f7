"""Side by side: the same CRI workloads against pinnace and a reference runtime, in alternating
rounds on this machine, with one table of medians and ratios.

    .venv/bin/python -m benchmarks.bench_cri [--reference containerd] [--rounds 3]
        [--endpoint NAME=unix:///path/to.sock ...] [--pods 30] [--pull-mb 100] [--skip pull,...]
        [--only exec]

``--skip`` and ``--only`` name workloads: ``lifecycle``, ``exec``, ``list``, ``pull``.

Every runtime pulls from one local docker-registry and networks "bridge" pods with the same CNI
plugins (bridge + host-local + portmap, no masquerade; each runtime its own bridge and subnet).
pinnace is started in a temporary directory; ``--reference containerd`` also starts Debian's
containerd (installed with apt-get if missing) in one (see ``benchmarks/reference.py``);
``--endpoint`` adds any other running CRI endpoint (it must be able to pull the benchmark's
images, and bridge figures need its own CNI config; memory is not measured for it).

Figures (each round runs every workload once per runtime, runtimes in alternating order):
- pod lifecycle (Run, Create, Start, Stop, Remove container, Stop, Remove pod), host and bridge
  network, p50 of ``--lifecycles`` each round;
- pods/s with 8 concurrent clients doing bridge lifecycles;
- ExecSync ``echo hi`` p50; ListPodSandbox and ListContainers p50 with ``--pods`` pods running;
- memory added per pod: growth of the daemon's RSS plus the RSS of everything it runs per pod
  except the workload itself (pinnace: conmon, and the infra container where a pod needs one;
  containerd: the shim and the pause container), over ``--pods`` running pods;
- cold pull throughput of ``--pull-mb`` MB in 5 incompressible gzip layers (the image is
  removed after each pull, which garbage-collects it in both runtimes) and the daemon's CPU
  per MB pulled (``/proc/<pid>/stat``; containerd unpacks in its daemon too), and PullImage of
  an image that is already present (a tag: resolved against the registry by both runtimes;
  client round trip, and pinnace's own server time from its request-duration metric).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from benchmarks import reference  # noqa: E402
from benchmarks.workload import (  # noqa: E402
    WORKLOAD_CMD,
    bridge_conflist,
    cmdline,
    concurrent_lifecycles,
    conmon_pids,
    cpu_seconds,
    lifecycle,
    pids_whose_args,
    push_bench_images,
    remove_pod,
    rss_pss_kb,
    run_pod,
    timed,
)
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, cri_channel, cri_clients, hosts_toml  # noqa: E402
from tests.support.iptables import hostport_chains, remove_hostport_chains  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

# (figure key, label, unit, better when "lower"/"higher", target ratio or None)
FIGURES: list[tuple[str, str, str, str, float | None]] = [
    ("lifecycle_host", "pod lifecycle, host network, p50", "ms", "lower", 0.35),
    ("lifecycle_bridge", "pod lifecycle, CNI bridge, p50", "ms", "lower", 0.5),
    ("pods_per_s_8", "pods/s, 8 concurrent clients (bridge)", "/s", "higher", 2.0),
    ("execsync", "ExecSync `echo hi`, p50", "ms", "lower", 0.7),
    ("list_pods", "ListPodSandbox with N pods, p50", "ms", "lower", 0.8),
    ("list_containers", "ListContainers with N pods, p50", "ms", "lower", 0.8),
    ("memory_per_pod", "memory added per pod (daemon + supervisor)", "MB", "lower", 0.15),
    ("cold_pull", "cold pull, 5 incompressible gzip layers", "MB/s", "higher", 1.4),
    ("cold_pull_cpu", "cold pull, daemon CPU per MB", "ms", "lower", None),
    ("warm_pull", "PullImage of an image already present, p50", "ms", "lower", None),
    ("warm_pull_server", "PullImage of an image already present, server mean", "ms", "lower", None),
]


@dataclass
class Target:
    """One CRI endpoint under test."""

    name: str
    endpoint: str
    runtime: Any
    image: Any
    daemon_pid: int | None = None
    # Returns the pids of the per-pod helpers this runtime started (supervisors, infra).
    helpers: Callable[[], list[int]] | None = None
    # Returns (seconds, count) the daemon has spent answering PullImage so far (its metrics)
    pull_server_time: Callable[[], tuple[float, float]] | None = None
    bridge: bool = True
    samples: dict[str, list[float]] = field(default_factory=dict)

    def record(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)


WORKLOADS = ("lifecycle", "exec", "list", "pull")


# -- measurements ----------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _subtree(roots: list[int]) -> list[int]:
    tree = _children()
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def _overhead_kb(target: Target) -> int:
    """RSS of the daemon plus every per-pod helper, excluding the workload processes."""
    helpers = target.helpers() if target.helpers else []
    total = rss_pss_kb(target.daemon_pid)[0] if target.daemon_pid else 0
    for pid in _subtree(helpers):
        if cmdline(pid)[-2:] != WORKLOAD_CMD:
            total += rss_pss_kb(pid)[0]
    return total


# -- one round of every workload on one target -------------------------------------------------
def run_round(target: Target, image: str, big: str, args: argparse.Namespace) -> None:
    rt, img = target.runtime, target.image
    skip = set(args.skip)
    networks = ["host", "bridge"] if target.bridge else ["host"]
    if "lifecycle" not in skip:
        for network in networks:
            lifecycle(rt, image, network)  # warm
            took = [lifecycle(rt, image, network) for _ in range(args.lifecycles)]
            target.record(f"lifecycle_{network}", statistics.median(took) * 1000)
        if target.bridge:
            _, wall = concurrent_lifecycles(target.endpoint, image, "bridge", clients=8, each=3)
            target.record("pods_per_s_8", 8 * 3 / wall)
    if "exec" not in skip:
        pod, ctr = run_pod(rt, image, "host")
        try:
            request = pb.ExecSyncRequest(container_id=ctr, cmd=["echo", "hi"], timeout=10)
            took = timed(lambda: rt.ExecSync(request, timeout=30), 30)
            target.record("execsync", statistics.median(took) * 1000)
        finally:
            remove_pod(rt, pod, ctr)
    if "list" not in skip:
        before = _overhead_kb(target)
        network = "bridge" if target.bridge else "host"
        pods = [run_pod(rt, image, network) for _ in range(args.pods)]
        try:
            lp = timed(lambda: rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10), 100)
            lc = timed(lambda: rt.ListContainers(pb.ListContainersRequest(), timeout=10), 100)
            target.record("list_pods", statistics.median(lp) * 1000)
            target.record("list_containers", statistics.median(lc) * 1000)
            if target.daemon_pid:
                added = max(0, _overhead_kb(target) - before)
                target.record("memory_per_pod", added / args.pods / 1024)
        finally:
            for pod, ctr in pods:
                remove_pod(rt, pod, ctr)
    if "pull" not in skip:
        spec = pb.ImageSpec(image=big)
        cpu = cpu_seconds(target.daemon_pid) if target.daemon_pid else 0.0
        start = time.perf_counter()
        img.PullImage(pb.PullImageRequest(image=spec), timeout=600)
        took = time.perf_counter() - start
        megabytes = args.pull_mb * 1024 * 1024 / 1e6
        target.record("cold_pull", megabytes / took)
        if target.daemon_pid:
            target.record("cold_pull_cpu", (cpu_seconds(target.daemon_pid) - cpu) / megabytes * 1e3)
        server = target.pull_server_time() if target.pull_server_time else None
        warm = timed(lambda: img.PullImage(pb.PullImageRequest(image=spec), timeout=60), 20)
        target.record("warm_pull", statistics.median(warm) * 1000)
        if server is not None and target.pull_server_time is not None:
            seconds, count = target.pull_server_time()
            if count > server[1]:
                target.record("warm_pull_server", (seconds - server[0]) / (count - server[1]) * 1e3)
        img.RemoveImage(pb.RemoveImageRequest(image=spec), timeout=120)


# -- the table -------------------------------------------------------------------------------------
def print_table(targets: list[Target], args: argparse.Namespace) -> None:
    pinnace, others = targets[0], targets[1:]
    head = ["figure", *(t.name for t in others), pinnace.name]
    head += [f"ratio vs {t.name}" for t in others] + ["target"]
    rows = []
    for key, label, unit, better, goal in FIGURES:
        if key not in pinnace.samples:
            continue
        label = label.replace("N pods", f"{args.pods} pods")
        mine = statistics.median(pinnace.samples[key])
        row = [f"{label} ({unit})"]
        ratios = []
        for other in others:
            theirs = other.samples.get(key)
            if not theirs:
                row.append("-")
                ratios.append("-")
                continue
            ref = statistics.median(theirs)
            row.append(f"{ref:.2f}")
            ratios.append(f"{mine / ref:.2f}" if ref else "-")
        row.append(f"{mine:.2f}")
        row += ratios
        sign = "<=" if better == "lower" else ">="
        row.append(f"{sign} {goal}" if goal is not None else "")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    print(f"(medians of {args.rounds} rounds; rounds alternate the order of the runtimes)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rpc_seconds(port: int, method: str) -> tuple[float, float]:
    """(sum, count) of pinnace's request-duration histogram for ``method``, from /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        if (
            line.startswith("pinnace_grpc_request_duration_seconds_")
            and f'method="{method}"' in line
        ):
            kind = line.split("{", 1)[0].rsplit("_", 1)[1]
            if kind in found:
                found[kind] += float(line.rsplit(" ", 1)[1])
    return found["sum"], found["count"]


@contextlib.contextmanager
def _targets(
    base: Path, registry: Registry, pause: str, args: argparse.Namespace
) -> Iterator[list[Target]]:
    hosts = base / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    bridges = ["pnbcri0", "pnbcri1"]
    chains_before = hostport_chains()
    with contextlib.ExitStack() as stack:
        stack.callback(remove_hostport_chains, keep=chains_before)
        for bridge in bridges:
            stack.callback(subprocess.run, ["ip", "link", "del", bridge], capture_output=True)
        (base / "pinnace").mkdir()
        metrics_port = _free_port()
        daemon = Pinnaced(
            base / "pinnace",
            registry_hosts_dir=hosts,
            extra_args=["--log-level", "info", "--metrics-address", f"127.0.0.1:{metrics_port}"],
            config_text=f'[images]\nsandbox_image = "{pause}"\n',
        )
        daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (daemon.cni_conf_dir / "10-bench.conflist").write_text(
            bridge_conflist("bench", bridges[0], "10.213.248.0/24", base / "ipam-pinnace")
        )
        stack.enter_context(daemon)
        targets = [
            Target(
                "pinnace",
                f"unix://{daemon.socket}",
                *daemon.clients(),
                daemon_pid=daemon.pid,
                helpers=lambda: conmon_pids(daemon.state),
                pull_server_time=lambda: _rpc_seconds(metrics_port, "PullImage"),
            )
        ]
        if args.reference == "containerd":
            reference.ensure_installed()
            (base / "containerd").mkdir()
            ctd = reference.Containerd(base / "containerd", sandbox_image=pause, hosts_dir=hosts)
            ctd.cni_conf_dir.mkdir(parents=True)
            (ctd.cni_conf_dir / "10-bench.conflist").write_text(
                bridge_conflist("bench", bridges[1], "10.213.249.0/24", base / "ipam-ctd")
            )
            stack.enter_context(ctd)
            sock = str(ctd.socket)
            targets.append(
                Target(
                    f"containerd {reference.version()}",
                    f"unix://{sock}",
                    *ctd.clients(),
                    daemon_pid=ctd.pid,
                    helpers=lambda: pids_whose_args(
                        lambda a: bool(a) and "containerd-shim" in a[0] and sock in a
                    ),
                )
            )
        for spec in args.endpoint:
            name, _, url = spec.partition("=")
            channel = stack.enter_context(contextlib.closing(cri_channel(Path(url[7:]))))
            targets.append(
                Target(name, url, *cri_clients(Path(url[7:]), channel=channel), bridge=False)
            )
        for target in targets:
            target.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=pause)))
        yield targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", choices=["containerd", "none"], default="none")
    parser.add_argument("--endpoint", action="append", default=[], metavar="NAME=unix:///SOCK")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lifecycles", type=int, default=10)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--pull-mb", type=int, default=100)
    parser.add_argument("--skip", type=lambda s: s.split(","), default=[])
    parser.add_argument("--only", type=lambda s: s.split(","), default=[])
    args = parser.parse_args()
    unknown = set(args.skip + args.only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}: choose from {', '.join(WORKLOADS)}")
    if args.only:
        args.skip = [w for w in WORKLOADS if w not in args.only]
    for spec in args.endpoint:
        if "=" not in spec or not spec.split("=", 1)[1].startswith("unix://"):
            parser.error(f"--endpoint {spec!r}: expected NAME=unix:///path")

    cache = Path(tempfile.gettempdir()) / "pinnace-bench-cache"
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-cri-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            image, pause = push_bench_images(registry)
            if "pull" not in args.skip:
                big = images.big_image(cache, total_bytes=args.pull_mb * 1024 * 1024, layers=5)
                push_image(registry.url, "bench/big", "v1", big)
            with _targets(base, registry, pause, args) as targets:
                for target in targets:
                    target.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                for n in range(args.rounds):
                    for target in targets[::-1] if n % 2 else targets:
                        print(f"round {n + 1}: {target.name}", file=sys.stderr)
                        run_round(target, image, f"{registry.host}/bench/big:v1", args)
                print_table(targets, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
