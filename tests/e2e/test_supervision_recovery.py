# ruff: noqa: F811 - the fixtures imported from the neighbouring modules are parameters here
"""What operators broke by hand, end to end: a container's conmon killed under it, and a
recorded sandbox whose pinned network namespace is no longer a namespace when pinnaced starts.

Both must end with the truth reported over the CRI (the orphan killed and reported EXITED with
the reason its supervisor died; the sandbox NOTREADY), the daemon serving, and the pod
removable with nothing left on the node (the fixtures' teardowns check that)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_network import _pod, net_env, net_images  # noqa: F401 - fixtures
from tests.e2e.test_pods import PodEnv, pod_env, pod_images  # noqa: F401 - fixtures
from tests.support.daemon import Pinnaced, processes_mentioning

_MNT_DETACH = 2


def _conmon_of(container_id: str) -> int:
    found = [
        pid
        for pid, cmd in processes_mentioning([container_id]).items()
        if os.path.basename(cmd.split(" ", 1)[0]) == "conmon"
    ]
    assert len(found) == 1, f"expected one conmon for {container_id}, found {found}"
    return found[0]


def _pid_of(env: PodEnv, container_id: str) -> int:
    status = env.runtime.ContainerStatus(
        pb.ContainerStatusRequest(container_id=container_id, verbose=True)
    )
    return int(json.loads(status.info["info"])["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie nobody reaped yet is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _assert_supervisor_died(status: pb.ContainerStatus) -> None:
    assert status.state == pb.CONTAINER_EXITED
    assert status.exit_code == 137
    assert status.reason == "SupervisorDied"
    assert "conmon" in status.message
    assert status.finished_at >= status.started_at > 0


def test_conmon_killed_under_a_running_container(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    victim = pod_env.create(pod_id, pod, pod_env.container_config("victim", ["sleep", "1000"]))
    bystander = pod_env.create(
        pod_id, pod, pod_env.container_config("bystander", ["sleep", "1000"])
    )
    pod_env.start(victim)
    pod_env.start(bystander)
    orphan = _pid_of(pod_env, victim)
    watch = pod_env.watch_exits()
    try:
        os.kill(_conmon_of(victim), signal.SIGKILL)
        # the exit is a fact pinnaced learns (a pidfd on conmon), not something we poll for
        status = watch.wait(victim)
    finally:
        watch.close()
    _assert_supervisor_died(status)
    assert not _alive(orphan), "the orphaned container process still runs"
    # only that container: its neighbour and the pod are untouched
    assert pod_env.status(bystander).state == pb.CONTAINER_RUNNING
    assert pod_env.exec(bystander, ["echo", "ok"]).stdout == b"ok\n"
    # the pod stays stoppable and removable (this hung on the dead conmon before)
    pod_env.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
    pod_env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
    assert pod_env.runtime.ListContainers(pb.ListContainersRequest()).containers == []


def test_conmon_killed_while_pinnaced_is_down(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    victim = pod_env.create(pod_id, pod, pod_env.container_config("victim", ["sleep", "1000"]))
    pod_env.start(victim)
    orphan = _pid_of(pod_env, victim)
    conmon = _conmon_of(victim)
    pod_env.daemon.kill()
    os.kill(conmon, signal.SIGKILL)
    pod_env.daemon.start()
    pod_env.runtime, pod_env.image = pod_env.daemon.clients()
    # recorded before the daemon served again: no event to wait for
    _assert_supervisor_died(pod_env.status(victim))
    assert not _alive(orphan)
    pod_env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)


def _umount(path: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(str(path).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))


@pytest.mark.parametrize("damage", ["unmounted", "removed"])
def test_a_sandbox_whose_netns_pin_is_broken_never_keeps_the_daemon_down(
    net_env: tuple[Pinnaced, object, dict[str, str]],
    damage: str,
) -> None:
    daemon, network, _images = net_env
    runtime = daemon.runtime
    broken = runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=_pod("broken")), timeout=120
    ).pod_sandbox_id
    healthy = runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=_pod("healthy")), timeout=120
    ).pod_sandbox_id
    assert len(network.reservations()) == 2  # type: ignore[attr-defined]
    daemon.stop()
    pin = daemon.state / "sandboxes" / broken / "ns" / "net"
    _umount(pin)  # what an operator's cleanup did: the file stays, the namespace is gone
    if damage == "removed":  # every pin unmounted and the directory gone
        for kind in ("ipc", "uts"):
            _umount(pin.parent / kind)
        shutil.rmtree(pin.parent)
    daemon.start()
    runtime = daemon.runtime

    states = {s.id: s.state for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items}
    assert states == {broken: pb.SANDBOX_NOTREADY, healthy: pb.SANDBOX_READY}
    # CNI DEL ran without the namespace: the broken pod's address is free again
    assert len(network.reservations()) == 1  # type: ignore[attr-defined]
    assert runtime.Status(pb.StatusRequest()).status.conditions
    runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=broken), timeout=30)
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=broken), timeout=30)
    assert [s.id for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [healthy]
