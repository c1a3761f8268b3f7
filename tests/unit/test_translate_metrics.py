"""The CRI metrics: every descriptor well formed and cAdvisor-named; every sample's label
values match its descriptor's keys (what the kubelet's collector requires)."""

from __future__ import annotations

import re

from cri.api.runtime.v1 import api_pb2 as pb
from cri.translate.metrics import (
    BASE_LABELS,
    BY_NAME,
    DESCRIPTORS,
    descriptors,
    pod_sandbox_metrics,
)
from runtime.cgroups.detail import BlockIO, CgroupDetail, Pressure
from runtime.cgroups.stats import CgroupStats
from runtime.model.pods import (
    Container,
    ContainerConfig,
    ContainerState,
    PodMetadata,
    Sandbox,
    SandboxConfig,
    SandboxState,
)
from runtime.pods.service import (
    ContainerMetricFigures,
    FsCapacity,
    SandboxMetricFigures,
)
from runtime.stats.layers import LayerUsage
from runtime.stats.netdev import InterfaceCounters
from runtime.stats.procs import OpenFiles

SANDBOX = Sandbox(
    id="s" * 64,
    config=SandboxConfig(metadata=PodMetadata(name="web", uid="u", namespace="shop")),
    state=SandboxState.READY,
    created_at=1,
    runtime_handler="runc",
)
CONTAINER = Container(
    id="c" * 64,
    sandbox_id=SANDBOX.id,
    config=ContainerConfig(name="app"),
    image_id="sha256:x",
    image_name="busybox:1.35",
    state=ContainerState.RUNNING,
    created_at=1,
    started_at=1_700_000_000_000_000_000,
)
DETAIL = CgroupDetail(
    stats=CgroupStats(
        cpu_usage_ns=7_500_000_000,
        memory_usage=4096,
        memory_working_set=2048,
        rss=1024,
        page_faults=10,
        major_page_faults=3,
        pids=4,
        oom_kills=1,
    ),
    cpu_user_ns=5_000_000_000,
    cpu_system_ns=2_000_000_000,
    processes=2,
    threads=4,
    memory_limit=1 << 20,
    block_io=(BlockIO(8, 0, read_bytes=100, write_bytes=200, reads=1, writes=2),),
    cpu_pressure=Pressure(some_ns=3_000_000_000, full_ns=1_000_000_000),
)
ETH0 = InterfaceCounters("eth0", 100, 2, 0, 0, 300, 4, 0, 0)


def _figures() -> SandboxMetricFigures:
    return SandboxMetricFigures(
        sandbox=SANDBOX,
        timestamp_ns=1_800_000_000_000_000_000,
        interfaces=(ETH0,),
        containers=(
            ContainerMetricFigures(
                container=CONTAINER,
                timestamp_ns=1_800_000_000_000_000_000,
                cgroup=DETAIL,
                writable=LayerUsage(used_bytes=8192, inodes=3, timestamp_ns=1),
                open_files=OpenFiles(descriptors=5, sockets=1),
                devices={(8, 0): "/dev/sda"},
            ),
        ),
        fs=FsCapacity(capacity_bytes=10**12, inodes_total=1000, inodes_free=900),
    )


def test_descriptors_are_unique_cadvisor_names_with_help_and_base_labels() -> None:
    names = [d.name for d in DESCRIPTORS]
    assert len(names) == len(set(names))
    for d in descriptors():
        assert re.fullmatch(r"container_[a-z_]+", d.name), d.name
        assert d.help, d.name
        assert tuple(d.label_keys[:5]) == BASE_LABELS
        assert len(set(d.label_keys)) == len(d.label_keys)
    for family in ("cpu", "memory", "fs", "network", "spec", "pressure"):
        assert any(n.startswith(f"container_{family}_") for n in names), family
    assert {"container_processes", "container_threads", "container_oom_events_total"} <= set(names)


def test_counters_are_totals() -> None:
    for d in DESCRIPTORS:
        if d.name.endswith("_total") and d.name != "container_fs_inodes_total":
            assert d.type == pb.COUNTER, d.name


def _all(metrics: pb.PodSandboxMetrics) -> list[pb.Metric]:
    return [*metrics.metrics, *(m for c in metrics.container_metrics for m in c.metrics)]


def test_every_sample_matches_its_descriptor() -> None:
    out = pod_sandbox_metrics(_figures())
    samples = _all(out)
    assert len(samples) > 40
    for m in samples:
        d = BY_NAME[m.name]
        assert len(m.label_values) == len(d.label_keys), m.name
        assert m.metric_type == d.type
        assert m.timestamp > 0


def test_values_and_labels() -> None:
    out = pod_sandbox_metrics(_figures())
    assert out.pod_sandbox_id == SANDBOX.id
    (ctr,) = out.container_metrics
    assert ctr.container_id == CONTAINER.id
    by = {(m.name, tuple(m.label_values[5:])): m for m in _all(out)}
    base = list(ctr.metrics[0].label_values[:5])
    assert base == [CONTAINER.id, "busybox:1.35", "shop", "web", "app"]
    assert by[("container_cpu_usage_seconds_total", ("total",))].value.value == 7
    assert by[("container_cpu_user_seconds_total", ())].value.value == 5
    assert by[("container_memory_working_set_bytes", ())].value.value == 2048
    assert by[("container_fs_usage_bytes", ())].value.value == 8192
    assert by[("container_fs_writes_bytes_total", ("/dev/sda",))].value.value == 200
    assert by[("container_processes", ())].value.value == 2
    assert by[("container_threads", ())].value.value == 4
    assert by[("container_sockets", ())].value.value == 1
    assert by[("container_oom_events_total", ())].value.value == 1
    assert by[("container_memory_failures_total", ("pgmajfault", "container"))].value.value == 3
    assert by[("container_memory_failures_total", ("pgfault", "hierarchy"))].value.value == 7
    assert by[("container_spec_memory_limit_bytes", ())].value.value == 1 << 20
    assert by[("container_start_time_seconds", ())].value.value == 1_700_000_000
    assert by[("container_pressure_cpu_waiting_seconds_total", ())].value.value == 3
    rx = by[("container_network_receive_bytes_total", ("eth0",))]
    assert rx.value.value == 100
    assert list(rx.label_values[:5]) == [SANDBOX.id, "", "shop", "web", "POD"]
    assert rx in out.metrics  # the pod's network is a pod-level sample
