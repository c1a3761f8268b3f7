"""Pod churn against a real pinnaced, and the counts of everything it could leak.

``NodeCounts.take`` counts what belongs to one daemon and one test network only (its mounts,
pinned namespaces, veths on its bridge, host-local reservations, nat rules naming its subnet
or network (portmap's per-pod chains), cgroups under its own cgroup root in every hierarchy,
conmon/runc processes naming its dirs, its open fds, metadata rows, snapshot and bundle
directories), so whatever else runs on the host does not change them. ``churn`` runs pod
lifecycles from several clients at once: a pod on the CNI network (every other one with a host
port on 127.0.0.1), two containers (one long-running with an exec, one that exits cleanly,
crashes or is OOM-killed, its exit awaited on GetContainerEvents), stop, remove; while a
sampler times ListPodSandbox and ListContainers as kubelet's relist does.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support.daemon import (
    REPO_ROOT,
    Pinnaced,
    cgroup_dirs_of,
    mounts_under,
    processes_mentioning,
)

_NSFS_MOUNTS = "nsfs"


@dataclass(frozen=True)
class NodeCounts:
    mounts: int
    pinned_namespaces: int
    veths: int
    ip_reservations: int
    nat_rules: int
    cgroups: int
    conmon_runc_processes: int
    daemon_fds: int
    db_rows: int
    snapshot_dirs: int
    bundle_dirs: int

    @classmethod
    def take(
        cls,
        daemon: Pinnaced,
        *,
        bridge: str,
        ipam_dir: Path,
        subnet_prefix: str,
        network_name: str = "",
    ) -> NodeCounts:
        own = mounts_under([daemon.root, daemon.state])
        nsfs = 0
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            if right.startswith(_NSFS_MOUNTS) and point.startswith(str(daemon.state)):
                nsfs += 1
        veths = subprocess.run(
            ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
        ).stdout
        reservations = (
            [p for p in ipam_dir.rglob("*") if p.name.startswith(subnet_prefix)]
            if ipam_dir.exists()
            else []
        )
        nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
        cgroups = sum(
            sum(1 for p in top.rglob("*") if p.is_dir())
            for top in cgroup_dirs_of(daemon.cgroup_root)
        )
        processes = [
            cmd
            for pid, cmd in processes_mentioning([str(daemon.root), str(daemon.state)]).items()
            if pid != daemon.pid and ("conmon" in cmd or "runc" in cmd)
        ]
        fds = len(os.listdir(f"/proc/{daemon.pid}/fd")) if daemon.pid else 0
        db = sqlite3.connect(f"file:{daemon.root / 'metadata.db'}?mode=ro", uri=True)
        try:
            rows = sum(
                db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("sandboxes", "containers")
            )
        finally:
            db.close()
        snapshots = daemon.root / "snapshots" / "overlay" / "snapshots"
        # .removing-<id> is a removed snapshot's data that the snapshotter's background thread
        # has not deleted yet (its deletion is tested in test_snapshots_conformance)
        snapshot_dirs = (
            sum(1 for p in snapshots.iterdir() if not p.name.startswith(".removing-"))
            if snapshots.is_dir()
            else 0
        )
        bundles = sum(
            len(list((daemon.state / sub).iterdir()))
            for sub in ("sandboxes", "containers", "tasks", "exits", "sockets")
            if (daemon.state / sub).is_dir()
        )
        return cls(
            mounts=len(own),
            pinned_namespaces=nsfs,
            veths=len([line for line in veths.splitlines() if line.strip()]),
            ip_reservations=len(reservations),
            # portmap's DNAT and SNAT rules name the pod's address; its jumps into the
            # per-pod chains name the network in their comment
            nat_rules=sum(
                1
                for line in nat.splitlines()
                if subnet_prefix in line or (network_name and network_name in line)
            ),
            cgroups=cgroups,
            conmon_runc_processes=len(processes),
            daemon_fds=fds,
            db_rows=rows,
            snapshot_dirs=snapshot_dirs,
            bundle_dirs=bundles,
        )

    def table(self, after: NodeCounts) -> str:
        lines = [f"{'what':24} {'before':>8} {'after':>8}"]
        for f in fields(self):
            lines.append(f"{f.name:24} {getattr(self, f.name):8d} {getattr(after, f.name):8d}")
        return "\n".join(lines)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class ChurnResult:
    cycles: int
    seconds: float
    list_ms: list[float]
    rss_after_first: int
    rss_end: int
    exit_reasons: dict[str, int]

    @property
    def pods_per_second(self) -> float:
        return self.cycles / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.list_ms:
            return 0.0
        ordered = sorted(self.list_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        median = statistics.median(self.list_ms) if self.list_ms else 0.0
        return (
            f"{self.cycles} pod lifecycles in {self.seconds:.1f} s: "
            f"{self.pods_per_second:.2f} pods/s; List p50 {median:.2f} ms, "
            f"p99 {self.percentile(0.99):.2f} ms ({len(self.list_ms)} samples); "
            f"RSS {self.rss_after_first} KiB after the first cycles, {self.rss_end} KiB at the "
            f"end; exits {dict(sorted(self.exit_reasons.items()))}"
        )


# the second container of pod n: label, command, memory limit, the reason its status must give
_VARIANTS = (
    ("clean", ["true"], None, "Completed"),
    ("crash", ["sh", "-c", "exit 3"], None, "Error"),
    (
        "oom",
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
        32 * 1024 * 1024,
        "OOMKilled",
    ),
)


def expected_exits(cycles: int) -> dict[str, int]:
    """What ``ChurnResult.exit_reasons`` must be after ``cycles`` lifecycles."""
    out: dict[str, int] = {}
    for n in range(cycles):
        label, _, _, reason = _VARIANTS[n % len(_VARIANTS)]
        out[f"{label}:{reason}"] = out.get(f"{label}:{reason}", 0) + 1
    return out


# Every other pod maps a host port, so portmap's per-pod nat chains and rules come and go under
# the churn too. Loopback only, and below the ephemeral range (32768-60999), where other tests'
# servers and clients bind: a DNAT of a port in use on 127.0.0.1 would steal its connections.
HOST_PORT_BASE = 23000
HOST_PORTS = 1000


def _pod(name: str, n: int) -> pb.PodSandboxConfig:
    ports = (
        [
            pb.PortMapping(
                protocol=pb.TCP,
                container_port=8080,
                host_port=HOST_PORT_BASE + n % HOST_PORTS,
                host_ip="127.0.0.1",
            )
        ]
        if n % 2 == 0
        else []
    )
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="churn"),
        hostname=name,
        port_mappings=ports,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )


def _container(name: str, image: str, command: list[str], memory: int | None) -> pb.ContainerConfig:
    resources = (
        pb.LinuxContainerResources(memory_limit_in_bytes=memory, memory_swap_limit_in_bytes=memory)
        if memory
        else None
    )
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=command,
        linux=pb.LinuxContainerConfig(
            resources=resources,
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            ),
        ),
    )


def _lifecycle(runtime: Any, image: str, n: int) -> str:
    pod = _pod(f"churn-{n}", n)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id
    label, command, memory, _ = _VARIANTS[n % len(_VARIANTS)]
    ids = []
    for name, cmd, mem in (("server", ["sleep", "600"], None), (label, command, memory)):
        ids.append(
            runtime.CreateContainer(
                pb.CreateContainerRequest(
                    pod_sandbox_id=pod_id,
                    config=_container(name, image, cmd, mem),
                    sandbox_config=pod,
                ),
                timeout=60,
            ).container_id
        )
    # subscribed before the starts: the short-lived container's stop event cannot be missed
    events = runtime.GetContainerEvents(pb.GetEventsRequest(), timeout=120)
    try:
        events.initial_metadata()
        for ctr in ids:
            runtime.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
        reply = runtime.ExecSync(
            pb.ExecSyncRequest(container_id=ids[0], cmd=["true"], timeout=10), timeout=30
        )
        assert reply.exit_code == 0
        # it exits by itself (cleanly, crashing or OOM-killed) before the pod is stopped, so
        # the pod's stop never kills it first and every variant ends as it is meant to
        for event in events:
            if (
                event.container_id == ids[1]
                and event.container_event_type == pb.CONTAINER_STOPPED_EVENT
            ):
                break
    finally:
        events.cancel()
    runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    reason = runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=ids[1])).status.reason
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    return f"{label}:{reason or '-'}"


class ListSampler:
    """Times ListPodSandbox + ListContainers every ``interval`` s from a process of its own
    (``tests.support.list_sampler``), as the kubelet polls them; ``samples`` once it is done
    (each one of the two calls, client-side, in ms)."""

    def __init__(self, daemon: Pinnaced, *, interval: float = 0.1) -> None:
        self._argv = [
            sys.executable, "-m", "tests.support.list_sampler", str(daemon.socket), str(interval)
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self.samples: list[float] = []

    def __enter__(self) -> ListSampler:
        self._proc = subprocess.Popen(
            self._argv, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        # communicate() closes its stdin first: the sampler's signal to stop and print
        out, _ = self._proc.communicate(timeout=60)
        if self._proc.returncode != 0:
            raise RuntimeError(f"the List sampler failed (exit {self._proc.returncode})")
        self.samples = json.loads(out)


def churn(
    daemon: Pinnaced, image: str, *, cycles: int, clients: int, first: int = 100
) -> ChurnResult:
    """Run ``cycles`` pod lifecycles from ``clients`` threads (each its own channel)."""
    from tests.support.daemon import cri_clients

    stubs = [cri_clients(daemon.socket)[0] for _ in range(clients)]
    reasons: dict[str, int] = {}
    done = 0
    rss_first = 0
    lock = threading.Lock()
    assert daemon.pid is not None
    pid = daemon.pid

    def numbers() -> Iterator[int]:
        yield from range(cycles)

    counter = numbers()

    def worker(n_client: int) -> None:
        nonlocal done, rss_first
        runtime = stubs[n_client]
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            outcome = _lifecycle(runtime, image, n)
            with lock:
                reasons[outcome] = reasons.get(outcome, 0) + 1
                done += 1
                if done == min(first, cycles):
                    rss_first = rss_kib(pid)

    with ListSampler(daemon) as sampler:
        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            for future in [pool.submit(worker, i) for i in range(clients)]:
                future.result()
        seconds = time.monotonic() - started
    return ChurnResult(
        cycles=done,
        seconds=seconds,
        list_ms=sampler.samples,
        rss_after_first=rss_first,
        rss_end=rss_kib(pid),
        exit_reasons=reasons,
    )
