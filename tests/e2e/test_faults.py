# ruff: noqa: F811 - the fixtures imported from test_pods are parameters here
"""Faults at start: a damaged metadata database and a state directory wiped under the daemon
(a tmpfs after a reboot). pinnaced starts, serves, reports what it lost, and what it reports
is what is really on the node; nothing is left behind (pod_env's teardown checks)."""

from __future__ import annotations

import shutil

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_pods import PodEnv, pod_env, pod_images  # noqa: F401 - fixtures
from tests.support.daemon import clean_leftovers, mounts_under


def _pod_with_a_container(env: PodEnv) -> tuple[str, str]:
    pod = env.pod_config()
    pod_id = env.run_pod(pod)
    ctr = env.create(pod_id, pod, env.container_config("sleeper", ["sleep", "1000"]))
    env.start(ctr)
    return pod_id, ctr


def _reconnect(env: PodEnv) -> None:
    env.runtime, env.image = env.daemon.clients()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_metadata_database_is_moved_aside_and_the_daemon_serves(
    pod_env: PodEnv, damage: str
) -> None:
    daemon = pod_env.daemon
    _pod_with_a_container(pod_env)
    daemon.stop()
    db = daemon.root / "metadata.db"
    for companion in (db.with_name("metadata.db-wal"), db.with_name("metadata.db-shm")):
        companion.unlink(missing_ok=True)  # damage the file itself, not a WAL sqlite replays
    if damage == "garbage":
        db.write_bytes(b"\x00garbage\xff" * 4096)
    else:
        data = db.read_bytes()
        db.write_bytes(data[: max(len(data) // 3, 100)])
    daemon.start()
    _reconnect(pod_env)

    aside = list(daemon.root.glob("metadata.db.damaged-*"))
    assert aside, "the damaged file was not kept for inspection"
    assert "metadata database was damaged" in daemon.log_tail(400)
    # what the daemon lists is what exists: a pod it no longer knows was torn down, not
    # left running unlisted
    listed = pod_env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
    if not listed:
        assert mounts_under([daemon.state]) == []
        assert not list((daemon.state / "containers").iterdir())
    # and it serves: pull again, run a pod
    for ref in pod_env.images.values():
        pod_env.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    _pod_with_a_container(pod_env)


def test_a_wiped_state_directory_after_a_reboot(pod_env: PodEnv) -> None:
    daemon = pod_env.daemon
    pod_id, ctr = _pod_with_a_container(pod_env)
    daemon.kill()
    # a reboot: every process and mount of the pods gone, /run (the state dir) empty again
    clean_leftovers([daemon.root, daemon.state])
    shutil.rmtree(daemon.state)
    daemon.start()
    _reconnect(pod_env)

    sandbox = pod_env.runtime.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
    ).status
    assert sandbox.state == pb.SANDBOX_NOTREADY
    status = pod_env.status(ctr)
    assert status.state == pb.CONTAINER_EXITED
    assert status.reason == "Unknown" and "not found" in status.message
    pod_env.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
    pod_env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
    # the same pod can come back under its name (nothing stays reserved)
    _pod_with_a_container(pod_env)
