"""The kubelet's own requests, field by field: the recorded Guaranteed pod and kubelet-shaped
BestEffort and Burstable pods run under pinnaced, and every requested limit is checked from
the cgroups and from inside the containers, every status field against what was applied.

The kubelet sends hugepage limits (0) for every page size the host has even where no hugetlb
controller can apply them (this host: hugetlb only in the unified hierarchy of a hybrid
layout); before pinnace dropped them, every StartContainer failed."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import kubelet
from tests.support.daemon import Pinnaced
from tests.support.registry import Registry
from tests.support.replay import Substitutions


@pytest.fixture(scope="module")
def kubelet_images(registry: Registry) -> dict[str, str]:
    return kubelet.push_kubelet_images(registry.url)


@dataclass
class Node:
    daemon: Pinnaced
    runtime: Any
    image: Any
    node: kubelet.KubeletNode
    subs: Substitutions
    image_id: str

    def request(self, message: Any, recorded: dict[str, Any]) -> Any:
        return json_format.ParseDict(self.subs.apply(copy.deepcopy(recorded)), message)


@pytest.fixture
def node(
    pinnaced: Any, kubelet_images: dict[str, str], registry: Registry, tmp_path: Path
) -> Iterator[Node]:
    hosts = tmp_path / "certs.d"
    kubelet.route_recorded_registry(hosts, registry.url)
    daemon = pinnaced(
        config_text=f'[images]\nsandbox_image = "{kubelet_images["pause"]}"\n',
        registry_hosts_dir=hosts,
        start=False,
    )
    kubelet.loopback_network(daemon.cni_conf_dir)
    daemon.start()
    runtime, image = daemon.clients()
    for ref in kubelet_images.values():
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    image_id = image.ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=kubelet_images["busybox"]))
    ).image.id
    k = kubelet.KubeletNode.make(tmp_path / "node")
    subs = k.substitutions()
    env = Node(daemon, runtime, image, k, subs, image_id)
    yield env
    for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
    assert k.remove_cgroups() == []


def _recorded_guaranteed() -> tuple[dict[str, Any], dict[str, Any]]:
    calls = kubelet.load("guaranteed-pod.jsonl")
    return (
        kubelet.first(calls, "RunPodSandbox").request,
        kubelet.first(calls, "CreateContainer").request,
    )


def _container_pids(cgroup_path: str) -> list[int]:
    procs = kubelet.cgroup_file("memory", cgroup_path, "cgroup.procs").read_text().split()
    return [int(p) for p in procs]


def test_kubelet_guaranteed_container_starts_with_its_limits(node: Node) -> None:
    run_req, create_req = _recorded_guaranteed()
    # as recorded: hugepage limits 0 for both page sizes, oom_score_adj -997
    recorded_resources = create_req["config"]["linux"]["resources"]
    assert recorded_resources["hugepage_limits"] == [{"page_size": "2MB"}, {"page_size": "1GB"}]
    pod_id = node.runtime.RunPodSandbox(
        node.request(pb.RunPodSandboxRequest(), run_req), timeout=120
    ).pod_sandbox_id
    node.subs.add(create_req["pod_sandbox_id"], pod_id)
    node.subs.add(create_req["config"]["image"]["image"], node.image_id)
    create = node.request(pb.CreateContainerRequest(), create_req)
    node.node.prepare_mounts(json_format.MessageToDict(create, preserving_proto_field_name=True))
    ctr = node.runtime.CreateContainer(create, timeout=60).container_id
    node.runtime.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)

    status = node.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr)).status
    assert status.state == pb.CONTAINER_RUNNING
    cgroup = f"{create.sandbox_config.linux.cgroup_parent}/{ctr}"
    assert kubelet.read_int(kubelet.cgroup_file("memory", cgroup, "memory.limit_in_bytes")) == (
        64 << 20
    )
    assert kubelet.read_int(kubelet.cgroup_file("cpu", cgroup, "cpu.cfs_quota_us")) == 20000
    assert kubelet.read_int(kubelet.cgroup_file("cpu", cgroup, "cpu.cfs_period_us")) == 100000
    assert kubelet.read_int(kubelet.cgroup_file("cpu", cgroup, "cpu.shares")) == 204

    # what was applied: no hugepage limits (no usable hugetlb controller here), and the
    # oom_score_adj in effect (-997 needs CAP_SYS_RESOURCE; the container keeps the daemon's)
    applied = status.resources.linux
    assert list(applied.hugepage_limits) == []
    daemon_adj = int(Path(f"/proc/{node.daemon.pid}/oom_score_adj").read_text())
    pids = _container_pids(cgroup)
    assert pids
    in_effect = {int(Path(f"/proc/{p}/oom_score_adj").read_text()) for p in pids}
    assert in_effect == {max(-997, daemon_adj)}
    assert applied.oom_score_adj == max(-997, daemon_adj)
    assert (applied.cpu_quota, applied.cpu_period, applied.cpu_shares) == (20000, 100000, 204)
    assert applied.memory_limit_in_bytes == 64 << 20
    assert applied.memory_swap_limit_in_bytes == 64 << 20

    # the image as the kubelet shows it: the pod spec's name and a repo digest, not the id
    assert create.config.image.image == node.image_id
    assert status.image.image == "127.0.0.1:5000/busybox:1.35"
    assert status.image_ref.startswith("127.0.0.1:5000/busybox@sha256:")
    assert (
        status.image_ref
        in node.image.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=node.image_id))
        ).image.repo_digests
    )
    assert status.image_id == node.image_id
    verbose = node.runtime.ContainerStatus(
        pb.ContainerStatusRequest(container_id=ctr, verbose=True)
    ).info["info"]
    spec = json.loads((Path(json.loads(verbose)["bundle"]) / "config.json").read_text())
    assert spec["annotations"]["io.kubernetes.cri.image-name"] == "127.0.0.1:5000/busybox:1.35"


def test_hugepage_limits_fail_the_container_when_not_tolerated(
    pinnaced: Any, kubelet_images: dict[str, str], registry: Registry, tmp_path: Path
) -> None:
    """``tolerate_missing_hugetlb_controller = false``: the OCI runtime gets the limits and
    refuses the container, as containerd does with the option off."""
    hosts = tmp_path / "certs.d"
    kubelet.route_recorded_registry(hosts, registry.url)
    daemon = pinnaced(
        config_text=(
            f'[images]\nsandbox_image = "{kubelet_images["pause"]}"\n'
            "[runtime]\ntolerate_missing_hugetlb_controller = false\n"
        ),
        registry_hosts_dir=hosts,
        start=False,
    )
    kubelet.loopback_network(daemon.cni_conf_dir)
    daemon.start()
    runtime, image = daemon.clients()
    image.PullImage(
        pb.PullImageRequest(image=pb.ImageSpec(image=kubelet_images["busybox"])), timeout=120
    )
    k = kubelet.KubeletNode.make(tmp_path / "node")
    try:
        pod = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name="strict", uid="u-strict", namespace="e2e"),
            log_directory=str(k.log_root / "strict"),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{k.cgroup_top}/podstrict",
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                ),
            ),
        )
        pod_id = runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=pod), timeout=120
        ).pod_sandbox_id
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="c"),
            image=pb.ImageSpec(image=kubelet_images["busybox"]),
            command=["sleep", "60"],
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(
                    hugepage_limits=[pb.HugepageLimit(page_size="2MB", limit=0)]
                ),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                ),
            ),
        )
        ctr = runtime.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
        ).container_id
        import grpc

        with pytest.raises(grpc.RpcError) as info:
            runtime.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
        assert "hugetlb" in (info.value.details() or "")
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    finally:
        assert k.remove_cgroups() == []
