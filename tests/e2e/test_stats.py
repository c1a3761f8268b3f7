"""Stats end to end: writable-layer usage measured in the background, pod network counters
read from the pod's own namespace, the Stream* RPCs equal to their List RPCs, and the
in-place pod resize written into the pod's cgroup. Real pinnaced, runc, conmon and CNI
bridge; traffic only from this host to pod IPs in namespaces the test made."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_network import Network
from tests.support import images
from tests.support.daemon import Pinnaced, mounts_under
from tests.support.push import push_image
from tests.support.registry import Registry

T = TypeVar("T")


def _until(read: Callable[[], T], holds: Callable[[T], bool], *, timeout: float = 30) -> T:
    """Read until ``holds`` is true of the reading, or fail at the deadline with the last."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s; last reading: {value}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stats_image(registry: Registry) -> str:
    box = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/statsbox", "v1", box)
    return f"{registry.host}/test/statsbox:v1"


@pytest.fixture
def stats_env(pinnaced, stats_image, tmp_path) -> Iterator[tuple[Pinnaced, Network, str]]:
    config = (
        f'[images]\nsandbox_image = "{stats_image}"\n[stats]\nlayer_refresh_interval = "0.2s"\n'
    )
    daemon = pinnaced(config_text=config, start=False)
    network = Network(daemon.cni_conf_dir, tmp_path / "ipam")
    try:
        daemon.start()
        runtime, image = daemon.clients()
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=stats_image)), timeout=120)
        yield daemon, network, stats_image
        for sandbox in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
        assert mounts_under([daemon.root, daemon.state]) == []
        assert network.veths() == []
    finally:
        network.teardown()


def _pod_config(name: str = "") -> pb.PodSandboxConfig:
    name = name or f"stats-{uuid.uuid4().hex[:6]}"
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="stats"),
        hostname=name,
        labels={"suite": "stats"},
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )


def _container(runtime: Any, pod_id: str, config: pb.PodSandboxConfig, image: str) -> str:
    ctr = runtime.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            sandbox_config=config,
            config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="main"),
                image=pb.ImageSpec(image=image),
                labels={"suite": "stats"},
                linux=pb.LinuxContainerConfig(
                    security_context=pb.LinuxContainerSecurityContext(
                        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                    )
                ),
            ),
        ),
        timeout=60,
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
    return str(ctr)


def _pod(runtime: Any, image: str) -> tuple[str, str, pb.PodSandboxConfig]:
    config = _pod_config()
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return pod_id.pod_sandbox_id, _container(runtime, pod_id.pod_sandbox_id, config, image), config


def test_writable_layer_shows_what_the_container_wrote(stats_env) -> None:
    daemon, _network, image = stats_env
    runtime, image_service = daemon.clients()
    _pod_id, ctr, _ = _pod(runtime, image)
    written = 3 * 1024 * 1024
    done = runtime.ExecSync(
        pb.ExecSyncRequest(
            container_id=ctr,
            cmd=["sh", "-c", f"dd if=/dev/zero of=/blob bs=4096 count={written // 4096} && sync"],
            timeout=30,
        ),
        timeout=60,
    )
    assert done.exit_code == 0, done.stderr

    def read() -> pb.ContainerStats:
        return runtime.ContainerStats(pb.ContainerStatsRequest(container_id=ctr)).stats

    stats = _until(read, lambda s: s.writable_layer.used_bytes.value >= written)
    assert stats.writable_layer.inodes_used.value >= 1
    # pressure stall information wherever the kernel keeps it for cgroup2 (hybrid hosts too)
    if (
        Path("/sys/fs/cgroup/unified/cpu.pressure").exists()
        or Path("/sys/fs/cgroup/cpu.pressure").exists()
    ):
        assert stats.cpu.HasField("psi") and stats.memory.HasField("psi")
        assert stats.io.HasField("psi")
    assert stats.writable_layer.timestamp > 0
    # the layer names the filesystem ImageFsInfo reports, so the kubelet can match them
    fs = image_service.ImageFsInfo(pb.ImageFsInfoRequest())
    assert stats.writable_layer.fs_id.mountpoint == fs.image_filesystems[0].fs_id.mountpoint
    assert Path(fs.image_filesystems[0].fs_id.mountpoint).is_dir()
    assert fs.image_filesystems[0].used_bytes.value > 0
    listed = runtime.ListContainerStats(pb.ListContainerStatsRequest()).stats
    assert [s.writable_layer.used_bytes.value >= written for s in listed] == [True]


def _rx(runtime: Any, pod_id: str) -> pb.NetworkUsage:
    return runtime.PodSandboxStats(
        pb.PodSandboxStatsRequest(pod_sandbox_id=pod_id)
    ).stats.linux.network


def _send(ip: str, count: int, size: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(count):
            s.sendto(b"p" * size, (ip, 9))  # discard port: nothing answers but eth0 counts it


def test_pod_network_counters_from_its_namespace(stats_env) -> None:
    daemon, _network, image = stats_env
    runtime, _ = daemon.clients()
    config = _pod_config()
    pod_id = runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=config), timeout=120
    ).pod_sandbox_id
    ip = runtime.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
    ).status.network.ip
    assert ip

    # no process in the pod yet: the counters come through its pinned namespace file
    before = _rx(runtime, pod_id)
    assert [i.name for i in before.interfaces] == ["eth0"]
    assert before.default_interface.name == "eth0"
    _send(ip, 20, 1000)
    after = _until(
        lambda: _rx(runtime, pod_id),
        lambda n: (
            n.default_interface.rx_bytes.value >= before.default_interface.rx_bytes.value + 20_000
        ),
    )
    for counter in ("rx_bytes", "rx_errors", "tx_bytes", "tx_errors"):
        assert after.default_interface.HasField(counter), counter

    # with a container running, through that container's /proc/<pid>/net/dev
    _container(runtime, pod_id, config, image)
    _send(ip, 20, 1000)
    _until(
        lambda: _rx(runtime, pod_id),
        lambda n: (
            n.default_interface.rx_bytes.value >= after.default_interface.rx_bytes.value + 20_000
        ),
    )
    listed = runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest()).stats
    (pod,) = [p for p in listed if p.attributes.id == pod_id]
    assert pod.linux.network.default_interface.rx_bytes.value >= 40_000
    assert pod.linux.process.process_count.value >= 1
    assert pod.linux.cpu.usage_core_nano_seconds.value > 0
    assert pod.linux.memory.working_set_bytes.value > 0
    assert [c.attributes.metadata.name for c in pod.linux.containers] == ["main"]


def _drain(stream: Any) -> list[Any]:
    return list(stream)


def test_stream_rpcs_answer_what_the_list_rpcs_do(stats_env) -> None:
    daemon, _network, image = stats_env
    runtime, image_service = daemon.clients()
    first, _, _ = _pod(runtime, image)
    _pod(runtime, image)

    for filt in (
        None,
        pb.PodSandboxFilter(id=first),
        pb.PodSandboxFilter(label_selector={"suite": "stats"}),
    ):
        kw = {} if filt is None else {"filter": filt}
        listed = runtime.ListPodSandbox(pb.ListPodSandboxRequest(**kw)).items
        pages = _drain(runtime.StreamPodSandboxes(pb.StreamPodSandboxesRequest(**kw)))
        assert [x for p in pages for x in p.pod_sandboxes] == list(listed)

    cf = pb.ContainerFilter(pod_sandbox_id=first)
    for kw in ({}, {"filter": cf}):
        listed = runtime.ListContainers(pb.ListContainersRequest(**kw)).containers
        pages = _drain(runtime.StreamContainers(pb.StreamContainersRequest(**kw)))
        assert [x for p in pages for x in p.containers] == list(listed)

    listed_images = image_service.ListImages(pb.ListImagesRequest()).images
    pages = _drain(image_service.StreamImages(pb.StreamImagesRequest()))
    assert [x for p in pages for x in p.images] == list(listed_images)

    def ids(stats: list[Any]) -> list[str]:
        return [s.attributes.id for s in stats]

    sf = pb.ContainerStatsFilter(pod_sandbox_id=first)
    for kw in ({}, {"filter": sf}):
        listed_stats = runtime.ListContainerStats(pb.ListContainerStatsRequest(**kw)).stats
        pages = _drain(runtime.StreamContainerStats(pb.StreamContainerStatsRequest(**kw)))
        assert ids([x for p in pages for x in p.container_stats]) == ids(listed_stats)
    assert len(ids(listed_stats)) == 1

    pf = pb.PodSandboxStatsFilter(id=first)
    for kw in ({}, {"filter": pf}):
        listed_pods = runtime.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(**kw)).stats
        pages = _drain(runtime.StreamPodSandboxStats(pb.StreamPodSandboxStatsRequest(**kw)))
        assert ids([x for p in pages for x in p.pod_sandbox_stats]) == ids(listed_pods)


def test_update_pod_sandbox_resources_reaches_the_pod_cgroup(stats_env) -> None:
    daemon, _network, image = stats_env
    runtime, _ = daemon.clients()
    pod_id, _ctr, _ = _pod(runtime, image)
    runtime.UpdatePodSandboxResources(
        pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod_id,
            resources=pb.LinuxContainerResources(
                cpu_shares=333, cpu_quota=40_000, cpu_period=100_000, memory_limit_in_bytes=96 << 20
            ),
        )
    )
    v2 = not Path("/sys/fs/cgroup/memory").is_dir()
    base = Path("/sys/fs/cgroup")
    pod_cgroup = daemon.cgroup_root.strip("/") + "/" + pod_id
    if v2:
        pod_dir = base / pod_cgroup
        assert (pod_dir / "memory.max").read_text().strip() == str(96 << 20)
        assert (pod_dir / "cpu.max").read_text().split() == ["40000", "100000"]
    else:
        memory = base / "memory" / pod_cgroup / "memory.limit_in_bytes"
        assert memory.read_text().strip() == str(96 << 20)
        assert (base / "cpu" / pod_cgroup / "cpu.shares").read_text().strip() == "333"
        assert (base / "cpu" / pod_cgroup / "cpu.cfs_quota_us").read_text().strip() == "40000"
    # recorded and reported: the sandbox's config in PodSandboxStatus' verbose info
    status = runtime.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
    )
    assert str(96 << 20) in "".join(status.info.values())
    with pytest.raises(grpc.RpcError) as missing:
        runtime.UpdatePodSandboxResources(
            pb.UpdatePodSandboxResourcesRequest(
                pod_sandbox_id="f" * 64, resources=pb.LinuxContainerResources(cpu_shares=2)
            )
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def _samples(pod: pb.PodSandboxMetrics) -> list[pb.Metric]:
    return [*pod.metrics, *(m for c in pod.container_metrics for m in c.metrics)]


def test_metrics_match_their_descriptors_and_the_stream_equals_the_list(stats_env) -> None:
    daemon, _network, image = stats_env
    runtime, _ = daemon.clients()
    pod_id, ctr, _ = _pod(runtime, image)
    # container_fs_usage_bytes appears once the layer is measured: wait for that fact first
    _until(
        lambda: runtime.ContainerStats(pb.ContainerStatsRequest(container_id=ctr)).stats,
        lambda s: s.writable_layer.HasField("used_bytes"),
    )
    keys = {
        d.name: list(d.label_keys)
        for d in runtime.ListMetricDescriptors(pb.ListMetricDescriptorsRequest()).descriptors
    }
    assert {"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} <= set(keys)

    listed = runtime.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest()).pod_metrics
    (pod,) = [p for p in listed if p.pod_sandbox_id == pod_id]
    assert [c.container_id for c in pod.container_metrics] == [ctr]
    for m in _samples(pod):
        assert m.name in keys, m.name
        assert len(m.label_values) == len(keys[m.name]), m.name
    by = {(m.name, tuple(m.label_values)): m.value.value for m in _samples(pod)}
    base = (ctr, image, "stats")
    mine = {
        name: v for (name, labels), v in by.items() if labels[:3] == base and labels[4] == "main"
    }
    assert mine["container_memory_working_set_bytes"] > 0
    assert mine["container_processes"] >= 1 and mine["container_threads"] >= 1
    assert mine["container_last_seen"] > 0 and mine["container_start_time_seconds"] > 0
    eth0 = [labels for (name, labels) in by if name == "container_network_receive_bytes_total"]
    assert eth0 and eth0[0][4] == "POD" and eth0[0][5] == "eth0"

    pages = list(runtime.StreamPodSandboxMetrics(pb.StreamPodSandboxMetricsRequest()))
    streamed = [p for page in pages for p in page.pod_sandbox_metrics]
    assert [p.pod_sandbox_id for p in streamed] == [p.pod_sandbox_id for p in listed]

    def shape(p: pb.PodSandboxMetrics) -> list[tuple[str, list[str]]]:
        # block devices appear with a container's first I/O: not a difference of the RPCs
        return [(m.name, list(m.label_values)) for m in _samples(p) if "device" not in keys[m.name]]

    for a, b in zip(streamed, listed, strict=True):
        assert shape(a) == shape(b)
