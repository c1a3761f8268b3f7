# ruff: noqa: F811 - the fixtures imported from test_pods are parameters here
"""Two pinnaced on one host (different roots, one CNI network and one host-local IPAM
directory between them, as two runtimes on one node would have): the same pod and container
names run in both, each pod is in its own daemon's cgroup root and has its own address, and
removing, or restarting, one daemon touches nothing of the other's."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_network import Network
from tests.e2e.test_pods import PodEnv, pod_images  # noqa: F401 - fixtures
from tests.support.daemon import Pinnaced, cgroup_dirs_of, mounts_under


def _cgroups_of(pid: int) -> set[str]:
    """The cgroup paths of ``pid`` in every hierarchy (the root ``/`` left out)."""
    paths = set()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        path = line.split(":", 2)[2]
        if path != "/":
            paths.add(path)
    return paths


def _pid_of(env: PodEnv, container_id: str) -> int:
    status = env.runtime.ContainerStatus(
        pb.ContainerStatusRequest(container_id=container_id, verbose=True)
    )
    return int(json.loads(status.info["info"])["pid"])


def _ip_of(env: PodEnv, pod_id: str) -> str:
    status = env.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    return str(status.status.network.ip)


@pytest.fixture
def two(pinnaced, pod_images, tmp_path) -> Iterator[tuple[PodEnv, PodEnv, Network]]:  # type: ignore[no-untyped-def]
    config = f'[images]\nsandbox_image = "{pod_images["pause"]}"\n'
    one = pinnaced(config_text=config, start=False)
    other = pinnaced(config_text=config, start=False)
    network = Network(one.cni_conf_dir, tmp_path / "ipam")  # one bridge, one IPAM dir
    other.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(one.cni_conf_dir / "10-e2e.conflist", other.cni_conf_dir / "10-e2e.conflist")
    envs = []
    try:
        for daemon in (one, other):
            daemon.start()
            runtime, image = daemon.clients()
            image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=pod_images["busybox"])))
            envs.append(PodEnv(daemon, runtime, image, pod_images, tmp_path / "logs"))
        yield envs[0], envs[1], network
        for env in envs:
            for sandbox in env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
            assert mounts_under([env.daemon.root, env.daemon.state]) == []
        assert network.veths() == [] and network.reservations() == []
    finally:
        network.teardown()


def _pod_cgroups(daemon: Pinnaced) -> set[str]:
    return {
        p.name for top in cgroup_dirs_of(daemon.cgroup_root) for p in top.iterdir() if p.is_dir()
    }


def test_two_daemons_share_no_cgroups_addresses_or_names(two) -> None:  # type: ignore[no-untyped-def]
    a, b = two[0], two[1]
    network: Network = two[2]
    assert a.daemon.cgroup_root != b.daemon.cgroup_root
    # the same pod (name, namespace, uid) and container name in both: names are per daemon
    uid = uuid.uuid4().hex
    pod = a.pod_config(name="twin")
    pod.metadata.uid = uid
    pod.log_directory = ""
    running = {}
    for env in (a, b):
        pod_id = env.run_pod(pod)
        ctr = env.create(pod_id, pod, env.container_config("web", ["sleep", "600"]))
        env.start(ctr)
        running[env.daemon.cgroup_root] = (env, pod_id, ctr)
    (_, pod_a, ctr_a), (_, pod_b, ctr_b) = running.values()
    assert pod_a != pod_b and ctr_a != ctr_b
    # each container's processes are in its own daemon's cgroup root, in every hierarchy
    for root, (env, pod_id, ctr) in running.items():
        paths = _cgroups_of(_pid_of(env, ctr))
        assert paths and all(p.startswith(root + "/") for p in paths), (root, paths)
        assert pod_id in _pod_cgroups(env.daemon)
    assert not _pod_cgroups(a.daemon) & _pod_cgroups(b.daemon)
    # one IPAM directory, two reservations, two addresses
    assert _ip_of(a, pod_a) != _ip_of(b, pod_b)
    assert len(network.reservations()) == 2

    # one daemon restarted (its recovery runs) and its pod removed: the other's is untouched
    a.daemon.stop()
    a.daemon.start()
    a.runtime, a.image = a.daemon.clients()
    a.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_a), timeout=60)
    assert a.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert b.status(ctr_b).state == pb.CONTAINER_RUNNING
    assert b.exec(ctr_b, ["echo", "still"]).stdout == b"still\n"
    assert pod_b in _pod_cgroups(b.daemon) and _pod_cgroups(a.daemon) == set()
    assert network.reservations() and len(network.reservations()) == 1
    assert len(network.veths()) == 1
    # and the name is free again in the first daemon only
    again = a.run_pod(pod)
    a.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=again), timeout=60)
    assert [s.id for s in b.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [pod_b]
