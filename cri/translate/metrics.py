"""The CRI's cAdvisor-compatible metrics: descriptors (``ListMetricDescriptors``) and the
samples of a pod and its containers (``ListPodSandboxMetrics``).

A kubelet without cAdvisor (``PodAndContainerStatsFromCRI``) serves ``/metrics/cadvisor``
from these: it makes one Prometheus description per descriptor from its name, help and label
keys, and one sample per ``Metric`` with that name whose label values it pairs with the keys in
order; a sample whose values do not match its descriptor's keys is dropped with an error. So
every name here is cAdvisor's, every sample carries exactly its descriptor's label values:

- every metric has the base labels ``id``, ``image``, ``namespace``, ``pod``, ``container``
  (the container's id, its image as the user named it, the pod's namespace and name, the
  container's name; pod-level samples have the sandbox id, no image and container ``POD``,
  as cAdvisor shows the pod's network under the pause container);
- some add their own: ``cpu`` (``total``: the CRI's values cannot carry per-CPU figures),
  ``interface``, ``device``, ``failure_type`` + ``scope``.

Values are the CRI's unsigned integers: seconds are whole seconds (cumulative counters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.model.pods import Sandbox
from runtime.pods.service import ContainerMetricFigures, FsCapacity, SandboxMetricFigures
from runtime.stats.netdev import InterfaceCounters

BASE_LABELS = ("id", "image", "namespace", "pod", "container")
POD_CONTAINER = "POD"

COUNTER = pb.COUNTER
GAUGE = pb.GAUGE


@dataclass(frozen=True, slots=True)
class Descriptor:
    """One metric: its name, help text, type, and the labels it adds to the base ones."""

    name: str
    help: str
    type: pb.MetricType
    extra_labels: tuple[str, ...] = ()

    @property
    def label_keys(self) -> tuple[str, ...]:
        return BASE_LABELS + self.extra_labels


def _d(name: str, help: str, kind: pb.MetricType, *extra: str) -> Descriptor:
    return Descriptor(name, help, kind, tuple(extra))


DESCRIPTORS: tuple[Descriptor, ...] = (
    # cpu
    _d(
        "container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", COUNTER
    ),
    _d(
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        COUNTER,
    ),
    _d(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        COUNTER,
        "cpu",
    ),
    _d(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        COUNTER,
    ),
    _d(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        COUNTER,
    ),
    _d(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        COUNTER,
    ),
    # memory
    _d("container_memory_cache", "Number of bytes of page cache memory.", GAUGE),
    _d("container_memory_rss", "Size of RSS in bytes.", GAUGE),
    _d("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", GAUGE),
    _d("container_memory_mapped_file", "Size of memory mapped files in bytes.", GAUGE),
    _d("container_memory_swap", "Container swap usage in bytes.", GAUGE),
    _d("container_memory_failcnt", "Number of memory usage hits limits", COUNTER),
    _d(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        GAUGE,
    ),
    _d("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", GAUGE),
    _d("container_memory_working_set_bytes", "Current working set in bytes.", GAUGE),
    _d("container_memory_total_active_file_bytes", "Current total active file in bytes.", GAUGE),
    _d(
        "container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.", GAUGE
    ),
    _d("container_memory_active_anon_bytes", "Current active anonymous memory in bytes.", GAUGE),
    _d(
        "container_memory_inactive_anon_bytes", "Current inactive anonymous memory in bytes.", GAUGE
    ),
    _d(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        COUNTER,
        "failure_type",
        "scope",
    ),
    _d(
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        COUNTER,
    ),
    # filesystem: the writable layer, on the filesystem of the snapshotter
    _d("container_fs_inodes_free", "Number of available Inodes", GAUGE),
    _d("container_fs_inodes_total", "Number of Inodes", GAUGE),
    _d(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        GAUGE,
    ),
    _d(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        GAUGE,
    ),
    # block I/O
    _d("container_fs_reads_bytes_total", "Cumulative count of bytes read", COUNTER, "device"),
    _d("container_fs_reads_total", "Cumulative count of reads completed", COUNTER, "device"),
    _d("container_fs_writes_bytes_total", "Cumulative count of bytes written", COUNTER, "device"),
    _d("container_fs_writes_total", "Cumulative count of writes completed", COUNTER, "device"),
    # network (the pod's namespace)
    _d(
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        COUNTER,
        "interface",
    ),
    _d(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        COUNTER,
        "interface",
    ),
    # processes
    _d("container_file_descriptors", "Number of open file descriptors for the container.", GAUGE),
    _d("container_processes", "Number of processes running inside the container.", GAUGE),
    _d("container_sockets", "Number of open sockets for the container.", GAUGE),
    _d("container_threads", "Number of threads running inside the container", GAUGE),
    _d(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        GAUGE,
    ),
    # spec
    _d("container_spec_cpu_period", "CPU period of the container.", GAUGE),
    _d("container_spec_cpu_quota", "CPU quota of the container.", GAUGE),
    _d("container_spec_cpu_shares", "CPU share of the container.", GAUGE),
    _d("container_spec_memory_limit_bytes", "Memory limit for the container.", GAUGE),
    _d(
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
        GAUGE,
    ),
    _d("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", GAUGE),
    _d(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        GAUGE,
    ),
    _d("container_last_seen", "Last time a container was seen by the exporter", GAUGE),
    # pressure stall information
    _d(
        "container_pressure_cpu_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_cpu_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_memory_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to memory"
        " congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_memory_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to memory congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_io_stalled_seconds_total",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        COUNTER,
    ),
    _d(
        "container_pressure_io_waiting_seconds_total",
        "Total time duration tasks in the container have waited due to IO congestion.",
        COUNTER,
    ),
)

BY_NAME: dict[str, Descriptor] = {d.name: d for d in DESCRIPTORS}

_NS = 1_000_000_000


def descriptors() -> list[pb.MetricDescriptor]:
    """ListMetricDescriptors' answer."""
    return [
        pb.MetricDescriptor(name=d.name, help=d.help, label_keys=list(d.label_keys))
        for d in DESCRIPTORS
    ]


class _Samples:
    """Collects samples sharing base label values and a timestamp; refuses (our bug) a name
    without a descriptor or extra labels that do not match the descriptor's."""

    def __init__(self, base: Sequence[str], timestamp_ns: int) -> None:
        self._base = list(base)
        self._ts = timestamp_ns
        self.metrics: list[pb.Metric] = []

    def add(self, name: str, value: int, *extra: str) -> None:
        d = BY_NAME[name]
        if len(extra) != len(d.extra_labels):
            raise ValueError(f"{name}: labels {extra} do not match {d.extra_labels}")
        self.metrics.append(
            pb.Metric(
                name=name,
                timestamp=self._ts,
                metric_type=d.type,
                label_values=[*self._base, *extra],
                value=pb.UInt64Value(value=max(0, int(value))),
            )
        )


def _container_samples(
    f: ContainerMetricFigures, sandbox: Sandbox, fs: FsCapacity | None
) -> list[pb.Metric]:
    c, g, md = f.container, f.cgroup, sandbox.config.metadata
    s = _Samples((c.id, c.image_name, md.namespace, md.name, c.config.name), f.timestamp_ns)
    st = g.stats
    s.add("container_cpu_user_seconds_total", g.cpu_user_ns // _NS)
    s.add("container_cpu_system_seconds_total", g.cpu_system_ns // _NS)
    s.add("container_cpu_usage_seconds_total", st.cpu_usage_ns // _NS, "total")
    s.add("container_cpu_cfs_periods_total", g.cfs_periods)
    s.add("container_cpu_cfs_throttled_periods_total", g.cfs_throttled_periods)
    s.add("container_cpu_cfs_throttled_seconds_total", g.cfs_throttled_ns // _NS)
    s.add("container_memory_cache", g.memory_cache)
    s.add("container_memory_rss", st.rss)
    s.add("container_memory_kernel_usage", g.memory_kernel)
    s.add("container_memory_mapped_file", g.memory_mapped_file)
    s.add("container_memory_swap", g.memory_swap)
    s.add("container_memory_failcnt", g.memory_failcnt)
    s.add("container_memory_usage_bytes", st.memory_usage)
    s.add("container_memory_max_usage_bytes", g.memory_max_usage)
    s.add("container_memory_working_set_bytes", st.memory_working_set)
    s.add("container_memory_total_active_file_bytes", g.active_file)
    s.add("container_memory_total_inactive_file_bytes", g.inactive_file)
    s.add("container_memory_active_anon_bytes", g.active_anon)
    s.add("container_memory_inactive_anon_bytes", g.inactive_anon)
    minor = max(0, st.page_faults - st.major_page_faults)
    for scope in ("container", "hierarchy"):
        s.add("container_memory_failures_total", minor, "pgfault", scope)
        s.add("container_memory_failures_total", st.major_page_faults, "pgmajfault", scope)
    s.add("container_oom_events_total", st.oom_kills)
    if fs is not None:
        s.add("container_fs_inodes_free", fs.inodes_free)
        s.add("container_fs_inodes_total", fs.inodes_total)
        s.add("container_fs_limit_bytes", fs.capacity_bytes)
    if f.writable is not None:
        s.add("container_fs_usage_bytes", f.writable.used_bytes)
    for io in g.block_io:
        device = f.devices.get((io.major, io.minor), f"{io.major}:{io.minor}")
        s.add("container_fs_reads_bytes_total", io.read_bytes, device)
        s.add("container_fs_reads_total", io.reads, device)
        s.add("container_fs_writes_bytes_total", io.write_bytes, device)
        s.add("container_fs_writes_total", io.writes, device)
    s.add("container_file_descriptors", f.open_files.descriptors)
    s.add("container_processes", g.processes)
    s.add("container_sockets", f.open_files.sockets)
    s.add("container_threads", g.threads)
    s.add("container_threads_max", g.threads_max)
    s.add("container_spec_cpu_period", g.cpu_period)
    s.add("container_spec_cpu_quota", g.cpu_quota)
    s.add("container_spec_cpu_shares", g.cpu_shares)
    s.add("container_spec_memory_limit_bytes", g.memory_limit)
    s.add("container_spec_memory_reservation_limit_bytes", g.memory_reservation)
    s.add("container_spec_memory_swap_limit_bytes", g.memory_swap_limit)
    if c.started_at:
        s.add("container_start_time_seconds", c.started_at // _NS)
    s.add("container_last_seen", f.timestamp_ns // _NS)
    for kind, pressure in (
        ("cpu", g.cpu_pressure),
        ("memory", g.memory_pressure),
        ("io", g.io_pressure),
    ):
        if pressure is not None:
            s.add(f"container_pressure_{kind}_stalled_seconds_total", pressure.full_ns // _NS)
            s.add(f"container_pressure_{kind}_waiting_seconds_total", pressure.some_ns // _NS)
    return s.metrics


def _network_samples(s: _Samples, interfaces: Sequence[InterfaceCounters]) -> None:
    for i in interfaces:
        s.add("container_network_receive_bytes_total", i.rx_bytes, i.name)
        s.add("container_network_receive_packets_total", i.rx_packets, i.name)
        s.add("container_network_receive_packets_dropped_total", i.rx_dropped, i.name)
        s.add("container_network_receive_errors_total", i.rx_errors, i.name)
        s.add("container_network_transmit_bytes_total", i.tx_bytes, i.name)
        s.add("container_network_transmit_packets_total", i.tx_packets, i.name)
        s.add("container_network_transmit_packets_dropped_total", i.tx_dropped, i.name)
        s.add("container_network_transmit_errors_total", i.tx_errors, i.name)


def pod_sandbox_metrics(f: SandboxMetricFigures) -> pb.PodSandboxMetrics:
    """One pod's samples: its network and last-seen under container ``POD``, then each
    running container's."""
    md = f.sandbox.config.metadata
    pod = _Samples((f.sandbox.id, "", md.namespace, md.name, POD_CONTAINER), f.timestamp_ns)
    if f.interfaces is not None:
        _network_samples(pod, f.interfaces)
    pod.add("container_last_seen", f.timestamp_ns // _NS)
    return pb.PodSandboxMetrics(
        pod_sandbox_id=f.sandbox.id,
        metrics=pod.metrics,
        container_metrics=[
            pb.ContainerMetrics(
                container_id=c.container.id, metrics=_container_samples(c, f.sandbox, f.fs)
            )
            for c in f.containers
        ],
    )
