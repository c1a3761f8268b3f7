"""pinnaced SIGKILLed at every named step (runtime/faults.py) of RunPodSandbox, CreateContainer,
StartContainer, StopContainer, RemoveContainer (and the snapshot removal in it), StopPodSandbox,
RemovePodSandbox and PullImage, then restarted: the retried RPC succeeds or the object is
reported as it really is, exits that happened meanwhile are reported, nothing is leaked and no
name stays reserved.

Each case starts one daemon armed with one crash point (``PINNACE_CRASH_AT``), does what the
step needs beforehand, sends the RPC (the daemon dies: UNAVAILABLE), restarts it unarmed and
checks; the pods are on a CNI bridge with host-local addresses, and no mount, veth, address
reservation, pod cgroup, state directory or process may be left. The registry and images are
shared by the module. The default suite runs one point of each RPC (the one where the most is
half-made); ``scripts/check.sh --soak`` (or ``PINNACE_ALL_CRASH_POINTS=1``) runs every point."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from runtime import faults
from tests.e2e.test_network import Network
from tests.e2e.test_pods import PodEnv
from tests.e2e.test_pods import pod_images as pod_images  # a fixture this module uses
from tests.support.daemon import Pinnaced, cgroup_dirs_of, mounts_under, processes_mentioning

_NETWORK = pytest.StashKey[Network]()


@dataclass
class Case:
    """The objects a case works on (filled in by the steps)."""

    env: PodEnv
    pod: pb.PodSandboxConfig
    pod_id: str = ""
    ctr_config: pb.ContainerConfig | None = None
    ctr_id: str = ""
    notes: dict[str, object] = field(default_factory=dict)

    def run_pod(self) -> str:
        self.pod_id = self.env.run_pod(self.pod)
        return self.pod_id

    def create(self) -> str:
        self.ctr_config = self.ctr_config or self.env.container_config("main", ["sleep", "600"])
        self.ctr_id = self.env.create(self.pod_id, self.pod, self.ctr_config)
        return self.ctr_id

    def start(self) -> None:
        self.env.start(self.ctr_id)


def _pull(case: Case) -> None:
    case.env.image.PullImage(
        pb.PullImageRequest(image=pb.ImageSpec(image=case.env.images["busybox"])), timeout=120
    )


def _running(case: Case) -> None:
    case.run_pod()
    case.create()
    case.start()


def _stop_container(case: Case) -> None:
    case.env.runtime.StopContainer(
        pb.StopContainerRequest(container_id=case.ctr_id, timeout=0), timeout=30
    )


def _remove_container(case: Case) -> None:
    case.env.runtime.RemoveContainer(
        pb.RemoveContainerRequest(container_id=case.ctr_id), timeout=30
    )


def _stop_pod(case: Case) -> None:
    case.env.runtime.StopPodSandbox(
        pb.StopPodSandboxRequest(pod_sandbox_id=case.pod_id), timeout=30
    )


def _remove_pod(case: Case) -> None:
    case.env.runtime.RemovePodSandbox(
        pb.RemovePodSandboxRequest(pod_sandbox_id=case.pod_id), timeout=30
    )


def _pods(case: Case) -> dict[str, int]:
    items = case.env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    return {s.id: s.state for s in items}


def _containers(case: Case) -> dict[str, pb.ContainerStatus]:
    items = case.env.runtime.ListContainers(pb.ListContainersRequest()).containers
    return {c.id: case.env.status(c.id) for c in items}


# -- what each RPC's retry (or report) must look like after the restart ----------------------


def _after_run_pod(case: Case) -> None:
    pod_id = case.env.run_pod(case.pod)  # the same metadata: the retry kubelet sends
    assert _pods(case) == {pod_id: pb.SANDBOX_READY}
    case.pod_id = pod_id


def _after_create(case: Case) -> None:
    assert case.ctr_config is not None
    ctr_id = case.env.create(case.pod_id, case.pod, case.ctr_config)
    statuses = _containers(case)
    assert list(statuses) == [ctr_id]
    assert statuses[ctr_id].state == pb.CONTAINER_CREATED
    case.ctr_id = ctr_id
    case.start()  # and it runs
    assert case.env.status(ctr_id).state == pb.CONTAINER_RUNNING


USERNS_MAPPING = pb.IDMapping(host_id=100000, container_id=0, length=65536)


def _userns_pod(case: Case, *, volume: bool = False) -> None:
    """A pod in its own user namespace (as the kubelet sends ``hostUsers: false``), its
    container carrying the pod's options; with ``volume``, an id-mapped read-write bind of a
    host directory (what an emptyDir is) whose file must survive whatever the crash left."""
    userns = pb.UserNamespace(mode=pb.POD, uids=[USERNS_MAPPING], gids=[USERNS_MAPPING])
    case.pod.linux.security_context.namespace_options.userns_options.CopyFrom(userns)
    mounts = []
    if volume:
        host = case.env.daemon.short_dir / "volume"
        host.mkdir(mode=0o755)
        (host / "keep").write_text("host\n")
        case.notes["volume"] = host
        mounts.append(
            pb.Mount(
                container_path="/vol",
                host_path=str(host),
                uidMappings=[USERNS_MAPPING],
                gidMappings=[USERNS_MAPPING],
            )
        )
    ns = pb.NamespaceOption(pid=pb.CONTAINER, userns_options=userns)
    case.ctr_config = case.env.container_config(
        "main",
        ["sleep", "600"],
        mounts=mounts,
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)
        ),
    )
    case.run_pod()


def _after_create_userns(case: Case) -> None:
    _after_create(case)
    volume = case.notes.get("volume")
    if isinstance(volume, Path):
        # recovery detached the id-mapped view before removing the container's remains
        assert (volume / "keep").read_text() == "host\n"
        out = case.env.exec(case.ctr_id, ["stat", "-c", "%u", "/vol/keep"])
        assert out.stdout.split() == [b"0"], out  # host root's file is the pod root's


def _after_start(case: Case) -> None:
    status = case.env.status(case.ctr_id)
    if status.state == pb.CONTAINER_CREATED:
        case.start()  # the retry
        status = case.env.status(case.ctr_id)
    # reported as it is: the process runs (it was started, or the retry started it)
    assert status.state == pb.CONTAINER_RUNNING, status
    assert case.env.exec(case.ctr_id, ["echo", "up"]).stdout == b"up\n"


def _after_stop_container(case: Case) -> None:
    status = case.env.status(case.ctr_id)
    # the kill happened before the crash: its exit is reported, not lost
    assert status.state == pb.CONTAINER_EXITED, status
    assert status.exit_code == 137 and status.finished_at > 0
    _stop_container(case)  # the retry succeeds


def _after_remove_container(case: Case) -> None:
    _remove_container(case)
    assert _containers(case) == {}
    # the name is free again
    assert case.ctr_config is not None
    case.env.create(case.pod_id, case.pod, case.ctr_config)


def _after_remove_trashed(case: Case) -> None:
    """Killed with a removed snapshot's directory in the trash: the restarted daemon's
    cleanup deleted it before it served, and the retry finds the snapshot gone."""
    trash = [
        p
        for root in (case.env.daemon.root / "snapshots").glob("*/snapshots")
        for p in root.iterdir()
        if p.name.startswith(".removing-")
    ]
    assert trash == []
    _after_remove_container(case)


def _after_stop_pod(case: Case) -> None:
    _stop_pod(case)
    assert _pods(case) == {case.pod_id: pb.SANDBOX_NOTREADY}
    assert case.env.status(case.ctr_id).state == pb.CONTAINER_EXITED


def _after_remove_pod(case: Case) -> None:
    _remove_pod(case)
    assert _pods(case) == {} and _containers(case) == {}


def _after_pull(case: Case) -> None:
    _pull(case)
    ref = case.env.images["busybox"]
    status = case.env.image.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)))
    assert status.image.id


Step = Callable[[Case], object]
# point -> (what comes before the RPC, the RPC that reaches the point, the check after restart)
CASES: dict[str, tuple[Step, Step, Step]] = {
    "sandbox.run.dir-created": (lambda c: None, Case.run_pod, _after_run_pod),
    "sandbox.run.namespaces-pinned": (lambda c: None, Case.run_pod, _after_run_pod),
    "sandbox.run.network-attached": (lambda c: None, Case.run_pod, _after_run_pod),
    "sandbox.run.recorded": (lambda c: None, Case.run_pod, _after_run_pod),
    "rootfs.mount.layers-idmapped": (_userns_pod, Case.create, _after_create_userns),
    "container.create.rootfs-mounted": (Case.run_pod, Case.create, _after_create),
    "container.create.volumes-idmapped": (
        lambda c: _userns_pod(c, volume=True),
        Case.create,
        _after_create_userns,
    ),
    "container.create.recorded": (Case.run_pod, Case.create, _after_create),
    "container.start.task-created": (lambda c: (c.run_pod(), c.create()), Case.start, _after_start),
    "container.start.task-started": (lambda c: (c.run_pod(), c.create()), Case.start, _after_start),
    "container.stop.exited": (_running, _stop_container, _after_stop_container),
    "container.remove.task-deleted": (_running, _remove_container, _after_remove_container),
    "container.remove.files-removed": (_running, _remove_container, _after_remove_container),
    "snapshot.remove.trashed": (_running, _remove_container, _after_remove_trashed),
    "sandbox.stop.network-detached": (_running, _stop_pod, _after_stop_pod),
    "sandbox.stop.unpinned": (_running, _stop_pod, _after_stop_pod),
    "sandbox.remove.stopped": (_running, _remove_pod, _after_remove_pod),
    "sandbox.remove.files-removed": (_running, _remove_pod, _after_remove_pod),
    "image.pull.unpacked": (lambda c: None, _pull, _after_pull),
    "image.pull.recorded": (lambda c: None, _pull, _after_pull),
}


def test_every_crash_point_has_a_case() -> None:
    assert set(CASES) == faults.POINTS


@pytest.fixture
def armed(request, pinnaced, pod_images, tmp_path) -> Iterator[PodEnv]:  # type: ignore[no-untyped-def]
    point = request.param
    config = f'[images]\nsandbox_image = "{pod_images["pause"]}"\n'
    daemon = pinnaced(config_text=config, start=False, env={**os.environ, faults.ENV: point})
    # pods in their own user namespace reach their rootfs by path from inside it
    daemon.short_dir.chmod(0o711)
    # a bridge network with host-local addresses: a crash between CNI ADD and the record, or
    # between DEL and the unpin, must leave no veth and no address reserved
    network = Network(daemon.cni_conf_dir, tmp_path / "ipam")
    try:
        daemon.start()
        runtime, image = daemon.clients()
        # pods here need no infra container: only the containers' image (and that one is what
        # the PullImage cases pull themselves)
        refs = [] if point.startswith("image.") else [pod_images["busybox"]]
        for ref in refs:
            image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
        request.node.stash[_NETWORK] = network
        yield PodEnv(daemon, runtime, image, pod_images, tmp_path / "logs")
    finally:
        network.teardown()


# one per RPC for the default suite: the step after which the most exists but is unrecorded
DEFAULT = frozenset(
    {
        "sandbox.run.network-attached",
        "container.create.rootfs-mounted",
        "container.create.volumes-idmapped",
        "container.start.task-started",
        "container.stop.exited",
        "container.remove.task-deleted",
        "snapshot.remove.trashed",
        "sandbox.stop.network-detached",
        "sandbox.remove.stopped",
        "image.pull.unpacked",
    }
)
_ALL = bool(os.environ.get("PINNACE_ALL_CRASH_POINTS")) or bool(os.environ.get("PINNACE_SOAK"))
POINTS = sorted(CASES) if _ALL else sorted(DEFAULT)


@pytest.mark.parametrize("armed", POINTS, indirect=True)
def test_sigkill_at_each_step_then_restart(armed: PodEnv, request) -> None:  # type: ignore[no-untyped-def]
    point = request.node.callspec.params["armed"]
    env = armed
    daemon = env.daemon
    before, rpc, after = CASES[point]
    case = Case(env, env.pod_config(name=f"crash-{point.replace('.', '-')}"))
    before(case)
    with pytest.raises(grpc.RpcError) as info:
        rpc(case)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert daemon.stop() == -9, "the daemon did not die at the crash point"

    daemon.env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    daemon.start()
    env.runtime, env.image = daemon.clients()
    after(case)

    # everything removed through the CRI leaves nothing on the node, and the pod's name can
    # be used again
    for pod_id in _pods(case):
        env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert _pods(case) == {} and _containers(case) == {}
    assert mounts_under([daemon.root, daemon.state]) == []
    network = request.node.stash[_NETWORK]
    assert network.veths() == [] and network.reservations() == []
    pod_cgroups = [p for top in cgroup_dirs_of(daemon.cgroup_root) for p in top.iterdir()]
    assert [p for p in pod_cgroups if p.is_dir()] == []
    for sub in ("sandboxes", "containers", "tasks"):
        directory = daemon.state / sub
        assert not directory.is_dir() or list(directory.iterdir()) == [], sub
    # The restarted daemon and the writable-layer walker it runs are not leftovers.
    lingering = {
        pid: cmd
        for pid, cmd in processes_mentioning([str(daemon.root), str(daemon.state)]).items()
        if pid != daemon.pid and "cri.daemon" not in cmd and not _walker_of(daemon, pid, cmd)
    }
    assert lingering == {}
    again = env.run_pod(case.pod)
    env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=again))


def _walker_of(daemon: Pinnaced, pid: int, cmd: str) -> bool:
    """Whether ``pid`` is the running daemon's own writable-layer walker child."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return "runtime.stats.walker" in cmd and int(stat.rsplit(")", 1)[1].split()[1]) == daemon.pid
