"""cri.translate.stats: cgroup readings -> ContainerStats / PodSandboxStats."""

from __future__ import annotations

from cri.api.runtime.v1 import api_pb2 as pb
from cri.translate.stats import container_stats, pod_sandbox_stats
from runtime.cgroups.detail import Pressures, parse_pressure
from runtime.cgroups.stats import CgroupStats
from runtime.model.pods import (
    Container,
    ContainerConfig,
    ContainerState,
    PodMetadata,
    Resources,
    Sandbox,
    SandboxConfig,
    SandboxState,
)

READING = CgroupStats(
    cpu_usage_ns=5_000_000_000,
    memory_usage=300,
    memory_working_set=200,
    rss=150,
    page_faults=40,
    major_page_faults=2,
    pids=3,
    oom_kills=0,
)


def make_container(resources: Resources | None = None, config_limit: int = 0) -> Container:
    cfg = ContainerConfig(
        name="app",
        attempt=1,
        labels={"l": "1"},
        annotations={"a": "2"},
        resources=Resources(memory_limit_in_bytes=config_limit) if config_limit else None,
    )
    return Container(
        id="c1",
        sandbox_id="s1",
        config=cfg,
        image_id="sha256:x",
        image_name="x",
        state=ContainerState.RUNNING,
        created_at=0,
        resources=resources,
    )


def test_container_stats_full() -> None:
    s = container_stats(
        make_container(config_limit=1000),
        READING,
        timestamp_ns=77,
        usage_nano_cores=250_000_000,
        writable_bytes=4096,
        writable_inodes=12,
        image_fs_mountpoint="/var/lib/pinnace/snapshots",
    )
    assert s.attributes.id == "c1"
    assert s.attributes.metadata == pb.ContainerMetadata(name="app", attempt=1)
    assert dict(s.attributes.labels) == {"l": "1"}
    assert dict(s.attributes.annotations) == {"a": "2"}
    assert s.cpu.timestamp == 77
    assert s.cpu.usage_core_nano_seconds.value == 5_000_000_000
    assert s.cpu.usage_nano_cores.value == 250_000_000
    m = s.memory
    assert m.timestamp == 77
    assert m.working_set_bytes.value == 200
    assert m.usage_bytes.value == 300
    assert m.rss_bytes.value == 150
    assert m.page_faults.value == 40
    assert m.major_page_faults.value == 2
    assert m.available_bytes.value == 800
    w = s.writable_layer
    assert w.timestamp == 77
    assert w.fs_id.mountpoint == "/var/lib/pinnace/snapshots"
    assert w.used_bytes.value == 4096
    assert w.inodes_used.value == 12


def test_container_stats_with_nothing_known() -> None:
    s = container_stats(
        make_container(),
        None,
        timestamp_ns=1,
        usage_nano_cores=None,
        writable_bytes=None,
        writable_inodes=None,
        image_fs_mountpoint="/fs",
    )
    assert s.attributes.id == "c1"
    assert not s.HasField("cpu")
    assert not s.HasField("memory")
    assert s.writable_layer.fs_id.mountpoint == "/fs"
    assert not s.writable_layer.HasField("used_bytes")
    assert not s.writable_layer.HasField("inodes_used")


def test_no_limit_no_available_bytes_and_no_rate() -> None:
    s = container_stats(
        make_container(),
        READING,
        timestamp_ns=1,
        usage_nano_cores=None,
        writable_bytes=0,
        writable_inodes=None,
        image_fs_mountpoint="/fs",
    )
    assert not s.memory.HasField("available_bytes")
    assert not s.cpu.HasField("usage_nano_cores")
    assert s.cpu.HasField("usage_core_nano_seconds")
    assert s.writable_layer.HasField("used_bytes")  # a known 0 is reported
    assert s.writable_layer.used_bytes.value == 0


def test_applied_limit_wins_and_available_floors_at_zero() -> None:
    s = container_stats(
        make_container(resources=Resources(memory_limit_in_bytes=100), config_limit=1000),
        READING,
        timestamp_ns=1,
        usage_nano_cores=None,
        writable_bytes=None,
        writable_inodes=None,
        image_fs_mountpoint="/fs",
    )
    assert s.memory.HasField("available_bytes")
    assert s.memory.available_bytes.value == 0


def make_sandbox(limit: int = 0) -> Sandbox:
    cfg = SandboxConfig(
        metadata=PodMetadata(name="p", uid="u", namespace="n", attempt=1),
        labels={"app": "x"},
        annotations={"k": "v"},
        resources=Resources(memory_limit_in_bytes=limit) if limit else None,
    )
    return Sandbox(
        id="s1", config=cfg, state=SandboxState.READY, created_at=0, runtime_handler="runc"
    )


def test_pod_sandbox_stats() -> None:
    child = pb.ContainerStats(attributes=pb.ContainerAttributes(id="c1"))
    s = pod_sandbox_stats(
        make_sandbox(limit=250), READING, [child], timestamp_ns=9, usage_nano_cores=10
    )
    assert s.attributes.id == "s1"
    assert s.attributes.metadata == pb.PodSandboxMetadata(
        name="p", uid="u", namespace="n", attempt=1
    )
    assert dict(s.attributes.labels) == {"app": "x"}
    assert dict(s.attributes.annotations) == {"k": "v"}
    linux = s.linux
    assert linux.cpu.usage_core_nano_seconds.value == 5_000_000_000
    assert linux.cpu.usage_nano_cores.value == 10
    assert linux.memory.working_set_bytes.value == 200
    assert linux.memory.available_bytes.value == 50
    assert linux.process.timestamp == 9
    assert linux.process.process_count.value == 3
    assert [c.attributes.id for c in linux.containers] == ["c1"]
    assert not linux.HasField("network")


def test_pod_sandbox_stats_without_reading() -> None:
    s = pod_sandbox_stats(make_sandbox(), None, [], timestamp_ns=9, usage_nano_cores=None)
    assert s.attributes.id == "s1"
    assert s.HasField("linux")
    assert not s.linux.HasField("cpu")
    assert not s.linux.HasField("memory")
    assert not s.linux.HasField("process")
    assert len(s.linux.containers) == 0


def test_pressure_and_swap_are_reported_where_known() -> None:
    cpu = parse_pressure(
        "some avg10=1.50 avg60=0.75 avg300=0.25 total=2000\n"
        "full avg10=0.50 avg60=0.25 avg300=0.10 total=1000\n"
    )
    assert cpu is not None
    s = container_stats(
        make_container(),
        READING,
        timestamp_ns=7,
        usage_nano_cores=None,
        writable_bytes=None,
        writable_inodes=None,
        image_fs_mountpoint="/m",
        pressures=Pressures(cpu=cpu),
    )
    assert s.cpu.psi.Some.Total == 2_000_000  # nanoseconds
    assert (s.cpu.psi.Some.Avg10, s.cpu.psi.Full.Avg300) == (1.5, 0.1)
    assert not s.memory.HasField("psi") and not s.HasField("io")
    assert s.swap.HasField("swap_usage_bytes") and s.swap.timestamp == 7
