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
from tests.support import kubelet, watch
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


@pytest.fixture(scope="module")
def kubelet_daemon(
    kubelet_images: dict[str, str], registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Pinnaced, str]]:
    """One pinnaced for the module (each test runs its own pods in it and removes them)."""
    base = tmp_path_factory.mktemp("kubelet-qos")
    hosts = base / "certs.d"
    kubelet.route_recorded_registry(hosts, registry.url)
    (base / "daemon").mkdir()
    daemon = Pinnaced(
        base / "daemon",
        registry_hosts_dir=hosts,
        config_text=f'[images]\nsandbox_image = "{kubelet_images["pause"]}"\n',
    )
    try:
        kubelet.loopback_network(daemon.cni_conf_dir)
        daemon.start()
        for ref in kubelet_images.values():
            daemon.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
        image_id = daemon.image.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=kubelet_images["busybox"]))
        ).image.id
        yield daemon, image_id
    finally:
        leftovers = daemon.close()
    assert not leftovers, f"pinnaced left {leftovers}"


@pytest.fixture
def node(kubelet_daemon: tuple[Pinnaced, str], tmp_path: Path) -> Iterator[Node]:
    daemon, image_id = kubelet_daemon
    runtime, image = daemon.clients()
    k = kubelet.KubeletNode.make(tmp_path / "node")
    env = Node(daemon, runtime, image, k, k.substitutions(), image_id)
    try:
        yield env
    finally:
        for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
    assert k.remove_cgroups() == []


def _recorded(name: str, nth: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``nth`` RunPodSandbox of a recording and the first CreateContainer into it."""
    calls = kubelet.load(name)
    runs = list(kubelet.iter_calls(calls, "RunPodSandbox"))
    run = runs[nth]
    sandbox_id = run.response["pod_sandbox_id"] if run.response else ""
    create = next(
        c
        for c in kubelet.iter_calls(calls, "CreateContainer")
        if c.request["pod_sandbox_id"] == sandbox_id
    )
    return copy.deepcopy(run.request), copy.deepcopy(create.request)


def _burstable_from(
    run_req: dict[str, Any], create_req: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Burstable pod as kubelet v1.36 writes one (requests cpu 100m / memory 32Mi, limits cpu
    500m / memory 128Mi), field by field from the recorded BestEffort pod: the pod cgroup under
    ``burstable``, cpu shares from the request (100m → 102), quota from the limit (500m →
    50000 per 100000), memory and memory+swap limits, oom_score_adj from the memory request
    (1000 - 1000 * request / capacity, clamped to 2..999), RuntimeDefault seccomp, a uid."""
    uid = run_req["config"]["metadata"]["uid"]
    parent = f"/kubepods/burstable/pod{uid}"
    run_req["config"]["linux"]["cgroup_parent"] = parent
    run_req["config"]["linux"]["resources"] = {
        "cpu_period": "100000",
        "cpu_shares": "102",
        "cpu_quota": "50000",
        "memory_limit_in_bytes": str(128 << 20),
    }
    run_req["config"]["linux"]["security_context"]["seccomp"] = {}
    create_req["sandbox_config"] = copy.deepcopy(run_req["config"])
    linux = create_req["config"]["linux"]
    linux["resources"] = {
        "cpu_period": "100000",
        "cpu_quota": "50000",
        "cpu_shares": "102",
        "memory_limit_in_bytes": str(128 << 20),
        "memory_swap_limit_in_bytes": str(128 << 20),
        "oom_score_adj": "999",
        "hugepage_limits": [{"page_size": "2MB"}, {"page_size": "1GB"}],
    }
    linux["security_context"]["seccomp"] = {}  # RuntimeDefault
    linux["security_context"]["run_as_user"] = {"value": "1234"}
    return run_req, create_req


def _container_pids(cgroup_path: str) -> list[int]:
    procs = kubelet.cgroup_file("memory", cgroup_path, "cgroup.procs").read_text().split()
    return [int(p) for p in procs]


def _proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


@dataclass
class Started:
    create: Any
    ctr: str
    cgroup: str
    status: Any
    pid: int


def _start(node: Node, run_req: dict[str, Any], create_req: dict[str, Any]) -> Started:
    """RunPodSandbox and CreateContainer as the kubelet sent them (rewritten to this node)."""
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
    # StartContainer returns once runc's init is told to go, which may still be runc (with the
    # spec's capabilities, not yet its execve): the command's first log line is the fact that
    # /proc of the pid now shows the container's process
    watch.wait_for_content(Path(status.log_path), bool, timeout=30)
    cgroup = f"{create.sandbox_config.linux.cgroup_parent}/{ctr}"
    pids = _container_pids(cgroup)
    assert len(pids) == 1, f"expected the container's init alone in {cgroup}: {pids}"
    return Started(create, ctr, cgroup, status, pids[0])


def _exec(node: Node, ctr: str, script: str) -> tuple[int, str]:
    reply = node.runtime.ExecSync(
        pb.ExecSyncRequest(container_id=ctr, cmd=["sh", "-c", script], timeout=20), timeout=60
    )
    return reply.exit_code, reply.stdout.decode() + reply.stderr.decode()


_UNLIMITED = 1 << 62


def _check_in_effect(node: Node, s: Started) -> None:
    """Every resource the kubelet asked for is in the cgroup (or, where this host cannot apply
    it, left out and not reported), and ContainerStatus reports exactly what is in effect."""
    asked = s.create.config.linux.resources
    cg = s.cgroup
    assert s.status.state == pb.CONTAINER_RUNNING
    shares = kubelet.read_int(kubelet.cgroup_file("cpu", cg, "cpu.shares"))
    assert shares == (asked.cpu_shares or 1024)
    quota = kubelet.read_int(kubelet.cgroup_file("cpu", cg, "cpu.cfs_quota_us"))
    assert quota == (asked.cpu_quota or -1)
    if asked.cpu_period:
        assert (
            kubelet.read_int(kubelet.cgroup_file("cpu", cg, "cpu.cfs_period_us"))
            == asked.cpu_period
        )
    memory = kubelet.read_int(kubelet.cgroup_file("memory", cg, "memory.limit_in_bytes"))
    if asked.memory_limit_in_bytes:
        assert memory == asked.memory_limit_in_bytes
    else:
        assert memory >= _UNLIMITED
    memsw = kubelet.cgroup_file("memory", cg, "memory.memsw.limit_in_bytes")
    if asked.memory_swap_limit_in_bytes and memsw.exists():
        assert kubelet.read_int(memsw) == asked.memory_swap_limit_in_bytes
    daemon_adj = int(Path(f"/proc/{node.daemon.pid}/oom_score_adj").read_text())
    in_effect = int(Path(f"/proc/{s.pid}/oom_score_adj").read_text())
    assert in_effect == max(asked.oom_score_adj, daemon_adj)

    applied = s.status.resources.linux
    assert (applied.cpu_period, applied.cpu_quota, applied.cpu_shares) == (
        asked.cpu_period,
        asked.cpu_quota,
        asked.cpu_shares,
    )
    assert applied.memory_limit_in_bytes == asked.memory_limit_in_bytes
    assert applied.memory_swap_limit_in_bytes == asked.memory_swap_limit_in_bytes
    assert applied.oom_score_adj == in_effect
    assert list(applied.hugepage_limits) == []  # no hugetlb controller runc can use here
    assert s.status.image.image == s.create.config.image.user_specified_image
    assert s.status.image_id == node.image_id
    assert dict(s.status.labels) == dict(s.create.config.labels)
    assert dict(s.status.annotations) == dict(s.create.config.annotations)
    assert s.status.metadata == s.create.config.metadata
    assert s.status.log_path == str(
        Path(s.create.sandbox_config.log_directory) / s.create.config.log_path
    )


def _check_security(node: Node, s: Started) -> None:
    """The security context, from /proc of the container's init and from inside it."""
    sec = s.create.config.linux.security_context
    proc = _proc_status(s.pid)
    uid = sec.run_as_user.value if sec.HasField("run_as_user") else 0
    assert proc["Uid"].split()[:2] == [str(uid), str(uid)]
    if sec.HasField("run_as_group"):
        assert proc["Gid"].split()[0] == str(sec.run_as_group.value)
    unconfined = (
        sec.HasField("seccomp") and sec.seccomp.profile_type == pb.SecurityProfile.Unconfined
    )
    assert proc["Seccomp"] == ("0" if unconfined else "2")
    if sec.no_new_privs:
        assert proc["NoNewPrivs"] == "1"
    if list(sec.capabilities.drop_capabilities) == ["ALL"]:
        wanted = 0
        for cap in sec.capabilities.add_capabilities:
            wanted |= 1 << _CAP_BITS[cap]
        assert int(proc["CapBnd"], 16) == wanted
        # a non-root process keeps none in effect (no ambient capabilities, as containerd)
        assert int(proc["CapEff"], 16) == (wanted if uid == 0 else 0)

    code, out = _exec(node, s.ctr, "awk '$2 == \"/\" {print $4}' /proc/mounts")
    root_options = out.split()[-1].split(",") if out.split() else []
    assert code == 0 and root_options[:1] == (["ro"] if sec.readonly_rootfs else ["rw"]), out
    # masked: files read as /dev/null, directories are empty (the host has both non-empty)
    code, out = _exec(
        node, s.ctr, "cat /proc/keys /proc/interrupts | wc -c; ls -A /sys/firmware | wc -l"
    )
    assert (code, out.split()) == (0, ["0", "0"]), f"masked paths are visible: {out}"
    code, out = _exec(node, s.ctr, "awk '$2 == \"/proc/sys\" {print $4}' /proc/mounts")
    assert code == 0 and all(o.split(",")[0] == "ro" for o in out.split()) and out.strip(), out


_CAP_BITS = {"NET_BIND_SERVICE": 10, "CHOWN": 0, "KILL": 5}


def test_besteffort_pod_as_the_kubelet_sends_it(node: Node) -> None:
    """hello-podnet of the static-pods recording: BestEffort (cpu shares 2, oom_score_adj 1000),
    pod network, Unconfined seccomp, root."""
    run_req, create_req = _recorded("static-pods.jsonl", nth=1)
    assert create_req["config"]["linux"]["resources"]["oom_score_adj"] == "1000"
    assert "/besteffort/" in run_req["config"]["linux"]["cgroup_parent"]
    s = _start(node, run_req, create_req)
    _check_in_effect(node, s)
    _check_security(node, s)
    assert int(Path(f"/proc/{s.pid}/oom_score_adj").read_text()) == 1000


def test_burstable_pod_as_the_kubelet_sends_it(node: Node) -> None:
    run_req, create_req = _burstable_from(*_recorded("static-pods.jsonl", nth=1))
    s = _start(node, run_req, create_req)
    _check_in_effect(node, s)
    _check_security(node, s)
    code, out = _exec(node, s.ctr, "id -u")
    assert (code, out.strip()) == (0, "1234")


def test_kubelet_guaranteed_container_starts_with_its_limits(node: Node) -> None:
    """The recorded Guaranteed pod exactly as sent: hugepage limits 0 for both page sizes,
    oom_score_adj -997, shared PID namespace, RuntimeDefault seccomp, uid/gid 1000, read-only
    root, all capabilities dropped but NET_BIND_SERVICE, a sysctl, an emptyDir."""
    run_req, create_req = _recorded("guaranteed-pod.jsonl")
    recorded_resources = create_req["config"]["linux"]["resources"]
    assert recorded_resources["hugepage_limits"] == [{"page_size": "2MB"}, {"page_size": "1GB"}]
    s = _start(node, run_req, create_req)
    _check_in_effect(node, s)
    _check_security(node, s)
    ctr, status = s.ctr, s.status
    # -997 needs CAP_SYS_RESOURCE: the container keeps the daemon's score, and says so
    daemon_adj = int(Path(f"/proc/{node.daemon.pid}/oom_score_adj").read_text())
    assert status.resources.linux.oom_score_adj == max(-997, daemon_adj)

    # inside: the env, the emptyDir writable by uid 1000, the pod's sysctl, one PID namespace
    environ = Path(f"/proc/{s.pid}/environ").read_bytes().split(b"\0")
    assert b"FOO=bar" in environ
    code, out = _exec(node, ctr, "touch /scratch/ok && cat /proc/sys/net/ipv4/ping_group_range")
    assert code == 0 and out.split() == ["0", "2147483647"], out
    code, out = _exec(node, ctr, "cat /proc/1/cmdline | tr '\\0' ' '")
    assert code == 0 and "sleep infinity" in out, "pid 1 is the pod's infra process"

    # the image as the kubelet shows it: the pod spec's name and a repo digest, not the id
    assert s.create.config.image.image == node.image_id
    assert status.image.image == "127.0.0.1:5000/busybox:1.35"
    assert status.image_ref.startswith("127.0.0.1:5000/busybox@sha256:")
    assert (
        status.image_ref
        in node.image.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=node.image_id))
        ).image.repo_digests
    )
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
