"""Cgroup readings -> CRI ContainerStats and PodSandboxStats.

Terms follow :mod:`runtime.cgroups.stats` (which follows cAdvisor). ``usage_nano_cores`` is a
rate (CPU nanoseconds per second, averaged since the previous reading) that only the caller,
which keeps the previous reading, can compute; None leaves it out. A figure the caller does
not have (no cgroup reading, no writable-layer usage) is left unset rather than reported as
0, so kubelet can tell "unknown" from "none".
"""

from __future__ import annotations

from collections.abc import Sequence

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.cgroups.detail import Pressure, Pressures
from runtime.cgroups.stats import CgroupStats
from runtime.model.pods import Container, Resources, Sandbox
from runtime.stats.netdev import InterfaceCounters, default_interface

__all__ = ["container_stats", "pod_sandbox_stats"]


def _u64(value: int) -> pb.UInt64Value:
    return pb.UInt64Value(value=max(0, value))


def _cpu(stats: CgroupStats, *, timestamp_ns: int, usage_nano_cores: int | None) -> pb.CpuUsage:
    cpu = pb.CpuUsage(timestamp=timestamp_ns, usage_core_nano_seconds=_u64(stats.cpu_usage_ns))
    if usage_nano_cores is not None:
        cpu.usage_nano_cores.CopyFrom(_u64(usage_nano_cores))
    return cpu


def _memory(stats: CgroupStats, *, timestamp_ns: int, limits: Resources | None) -> pb.MemoryUsage:
    memory = pb.MemoryUsage(
        timestamp=timestamp_ns,
        working_set_bytes=_u64(stats.memory_working_set),
        usage_bytes=_u64(stats.memory_usage),
        rss_bytes=_u64(stats.rss),
        page_faults=_u64(stats.page_faults),
        major_page_faults=_u64(stats.major_page_faults),
    )
    # Available memory only means something under a limit (cAdvisor: limit - working set).
    if limits is not None and limits.memory_limit_in_bytes > 0:
        memory.available_bytes.CopyFrom(
            _u64(limits.memory_limit_in_bytes - stats.memory_working_set)
        )
    return memory


def _psi(p: Pressure) -> pb.PsiStats:
    # PSI totals are nanoseconds in the CRI (microseconds in the kernel's files)
    return pb.PsiStats(
        Some=pb.PsiData(
            Total=p.some_ns, Avg10=p.some_avg[0], Avg60=p.some_avg[1], Avg300=p.some_avg[2]
        ),
        Full=pb.PsiData(
            Total=p.full_ns, Avg10=p.full_avg[0], Avg60=p.full_avg[1], Avg300=p.full_avg[2]
        ),
    )


def _add_pressures(
    cpu: pb.CpuUsage, memory: pb.MemoryUsage, io: pb.IoUsage, p: Pressures, *, timestamp_ns: int
) -> None:
    """Pressure stall information where the kernel has it (the kubelet's KubeletPSI)."""
    if p.cpu is not None:
        cpu.psi.CopyFrom(_psi(p.cpu))
    if p.memory is not None:
        memory.psi.CopyFrom(_psi(p.memory))
    if p.io is not None:
        io.timestamp = timestamp_ns
        io.psi.CopyFrom(_psi(p.io))


def container_stats(
    c: Container,
    stats: CgroupStats | None,
    *,
    timestamp_ns: int,
    usage_nano_cores: int | None,
    writable_bytes: int | None,
    writable_inodes: int | None,
    image_fs_mountpoint: str,
    writable_timestamp_ns: int | None = None,
    pressures: Pressures | None = None,
) -> pb.ContainerStats:
    """ContainerStats for ``c``. ``stats`` None (no cgroup, e.g. a created or exited
    container) leaves cpu and memory unset; the writable layer is always reported with its
    filesystem so kubelet can match it to ImageFsInfo, its figures only when known, stamped
    with the time they were measured (``writable_timestamp_ns``)."""
    out = pb.ContainerStats(
        attributes=pb.ContainerAttributes(
            id=c.id,
            metadata=pb.ContainerMetadata(name=c.config.name, attempt=c.config.attempt),
            labels=dict(c.config.labels),
            annotations=dict(c.config.annotations),
        ),
        writable_layer=pb.FilesystemUsage(
            timestamp=writable_timestamp_ns or timestamp_ns,
            fs_id=pb.FilesystemIdentifier(mountpoint=image_fs_mountpoint),
        ),
    )
    if writable_bytes is not None:
        out.writable_layer.used_bytes.CopyFrom(_u64(writable_bytes))
    if writable_inodes is not None:
        out.writable_layer.inodes_used.CopyFrom(_u64(writable_inodes))
    if stats is not None:
        limits = c.resources if c.resources is not None else c.config.resources
        out.cpu.CopyFrom(_cpu(stats, timestamp_ns=timestamp_ns, usage_nano_cores=usage_nano_cores))
        out.memory.CopyFrom(_memory(stats, timestamp_ns=timestamp_ns, limits=limits))
        out.swap.CopyFrom(
            pb.SwapUsage(timestamp=timestamp_ns, swap_usage_bytes=_u64(stats.swap_usage))
        )
        if pressures is not None:
            _add_pressures(out.cpu, out.memory, out.io, pressures, timestamp_ns=timestamp_ns)
    return out


def pod_sandbox_stats(
    sandbox: Sandbox,
    stats: CgroupStats | None,
    containers: Sequence[pb.ContainerStats],
    *,
    timestamp_ns: int,
    usage_nano_cores: int | None,
    interfaces: Sequence[InterfaceCounters] | None = None,
    pressures: Pressures | None = None,
) -> pb.PodSandboxStats:
    """PodSandboxStats for ``sandbox`` from the reading of its cgroup parent (``stats``, None
    when unreadable), its containers' stats and the counters of the interfaces of its network
    namespace (``interfaces``; None leaves network unset: a host-network pod, whose traffic
    is the node's, or one whose namespace is gone)."""
    cfg = sandbox.config
    out = pb.PodSandboxStats(
        attributes=pb.PodSandboxAttributes(
            id=sandbox.id,
            metadata=pb.PodSandboxMetadata(
                name=cfg.metadata.name,
                uid=cfg.metadata.uid,
                namespace=cfg.metadata.namespace,
                attempt=cfg.metadata.attempt,
            ),
            labels=dict(cfg.labels),
            annotations=dict(cfg.annotations),
        ),
        linux=pb.LinuxPodSandboxStats(containers=list(containers)),
    )
    if stats is not None:
        out.linux.cpu.CopyFrom(
            _cpu(stats, timestamp_ns=timestamp_ns, usage_nano_cores=usage_nano_cores)
        )
        out.linux.memory.CopyFrom(_memory(stats, timestamp_ns=timestamp_ns, limits=cfg.resources))
        out.linux.process.CopyFrom(
            pb.ProcessUsage(timestamp=timestamp_ns, process_count=_u64(stats.pids))
        )
        if pressures is not None:
            linux = out.linux
            _add_pressures(linux.cpu, linux.memory, linux.io, pressures, timestamp_ns=timestamp_ns)
    if interfaces is not None:
        out.linux.network.CopyFrom(network_usage(interfaces, timestamp_ns=timestamp_ns))
    return out


def _interface(c: InterfaceCounters) -> pb.NetworkInterfaceUsage:
    return pb.NetworkInterfaceUsage(
        name=c.name,
        rx_bytes=_u64(c.rx_bytes),
        rx_errors=_u64(c.rx_errors),
        tx_bytes=_u64(c.tx_bytes),
        tx_errors=_u64(c.tx_errors),
    )


def network_usage(interfaces: Sequence[InterfaceCounters], *, timestamp_ns: int) -> pb.NetworkUsage:
    """The pod's NetworkUsage: every interface, and the default one (``eth0``) beside them
    (what the kubelet shows as the pod's network)."""
    out = pb.NetworkUsage(timestamp=timestamp_ns, interfaces=[_interface(c) for c in interfaces])
    default = default_interface(interfaces)
    if default is not None:
        out.default_interface.CopyFrom(_interface(default))
    return out
