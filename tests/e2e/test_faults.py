# ruff: noqa: F811 - the fixtures imported from test_pods are parameters here
"""Faults at start: a damaged metadata database and a state directory wiped under the daemon
(a tmpfs after a reboot). pinnaced starts, serves, reports what it lost, and what it reports
is what is really on the node; nothing is left behind (pod_env's teardown checks)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.test_network import _pod
from tests.e2e.test_pods import PodEnv, pod_env, pod_images  # noqa: F401 - fixtures
from tests.support.daemon import Pinnaced, clean_leftovers, mounts_under, processes_mentioning
from tests.support.watch import wait_for_content


def _pod_with_a_container(env: PodEnv) -> tuple[str, str]:
    pod = env.pod_config()
    pod_id = env.run_pod(pod)
    ctr = env.create(pod_id, pod, env.container_config("sleeper", ["sleep", "1000"]))
    env.start(ctr)
    return pod_id, ctr


def _loopback_network(daemon: Pinnaced) -> None:
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )


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


# -- CNI plugins that hang or crash -------------------------------------------------------------

_PLUGIN = """#!/bin/sh
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'; exit 0
fi
if [ "$CNI_COMMAND" = ADD ]; then
  %s
fi
exit 0
"""


@pytest.mark.parametrize(
    ("behaviour", "action", "says"),
    [
        ("hangs", "exec sleep 600", "did not finish within"),
        ("crashes", "kill -SEGV $$", "exited with status"),
    ],
)
def test_a_cni_plugin_that_hangs_or_crashes(pinnaced, tmp_path, behaviour, action, says) -> None:
    bin_dir = tmp_path / "cni-bin"
    bin_dir.mkdir()
    plugin = bin_dir / f"e2e-{behaviour}"
    plugin.write_text(_PLUGIN % action)
    plugin.chmod(0o755)
    daemon = pinnaced(
        start=False,
        extra_args=["--cni-bin-dir", str(bin_dir)],
        config_text='[network]\nplugin_timeout = "2s"\n',
    )
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-bad.conflist").write_text(
        json.dumps(
            {"cniVersion": "1.0.0", "name": "bad", "plugins": [{"type": f"e2e-{behaviour}"}]}
        )
    )
    daemon.start()
    runtime = daemon.runtime
    with pytest.raises(grpc.RpcError) as info:
        runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=_pod("doomed")), timeout=60)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"e2e-{behaviour}" in info.value.details() and says in info.value.details()
    # cleaned up: no sandbox, no mounts, no plugin process left, and the daemon serves
    assert runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert mounts_under([daemon.root, daemon.state]) == []
    assert list((daemon.state / "sandboxes").iterdir()) == []
    assert not processes_mentioning([str(plugin)])
    assert runtime.Version(pb.VersionRequest()).runtime_name == "pinnace"


# -- runc or conmon missing or failing --------------------------------------------------------

_FAILING_RUNC = """#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = create ] || [ "$arg" = run ]; then
    echo 'time="2026-01-01T00:00:00Z" level=error msg="e2e runtime refuses to create"' >&2
    exit 1
  fi
done
exec /usr/sbin/runc "$@"
"""

_FAILING_CONMON = """#!/bin/sh
echo 'e2e conmon refuses to supervise' >&2
exit 1
"""


@pytest.mark.parametrize(
    "broken", ["runc missing", "runc failing", "conmon missing", "conmon failing"]
)
def test_a_missing_or_failing_runtime_or_conmon(pinnaced, pod_images, tmp_path, broken) -> None:
    runc = "/usr/sbin/runc"
    conmon = "/usr/bin/conmon"
    if broken == "runc missing":
        runc = str(tmp_path / "no-such-runc")
    elif broken == "runc failing":
        script = tmp_path / "failing-runc"
        script.write_text(_FAILING_RUNC)
        script.chmod(0o755)
        runc = str(script)
    elif broken == "conmon missing":
        conmon = str(tmp_path / "no-such-conmon")
    else:
        script = tmp_path / "failing-conmon"
        script.write_text(_FAILING_CONMON)
        script.chmod(0o755)
        conmon = str(script)
    config = (
        f'[images]\nsandbox_image = "{pod_images["pause"]}"\n'
        f'[runtime]\nconmon = "{conmon}"\n'
        f'[runtime.handlers.runc]\nbinary = "{runc}"\n'
    )
    daemon = pinnaced(config_text=config, start=False)
    _loopback_network(daemon)
    daemon.start()
    runtime, image = daemon.clients()
    image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=pod_images["busybox"])))
    env = PodEnv(daemon, runtime, image, pod_images, tmp_path / "logs")
    pod = env.pod_config()
    pod_id = env.run_pod(pod)  # no infra container: neither runc nor conmon is needed yet
    ctr = env.create(pod_id, pod, env.container_config("c", ["sleep", "100"]))
    with pytest.raises(grpc.RpcError) as info:
        env.start(ctr)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    expected = {
        "runc missing": "no-such-runc",
        "runc failing": "e2e runtime refuses to create",
        "conmon missing": "no-such-conmon",
        "conmon failing": "e2e conmon refuses to supervise",
    }[broken]
    assert expected in info.value.details()
    status = env.status(ctr)
    assert status.state == pb.CONTAINER_EXITED and status.reason == "StartError"
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
    assert runtime.ListContainers(pb.ListContainersRequest()).containers == []
    assert mounts_under([daemon.root, daemon.state]) == []
    assert list((daemon.state / "tasks").iterdir()) == []


# -- a full disk ------------------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_during_a_pull_a_create_and_log_writes(pinnaced, pod_images, tmp_path) -> None:
    config = f'[images]\nsandbox_image = "{pod_images["pause"]}"\n'
    daemon = pinnaced(config_text=config, start=False)
    _loopback_network(daemon)
    logs = tmp_path / "logs"
    with (
        _tmpfs(daemon.root, "3m"),
        _tmpfs(daemon.state, "16m"),
        _tmpfs(logs, "1m"),
    ):
        daemon.start()
        runtime, image = daemon.clients()
        env = PodEnv(daemon, runtime, image, pod_images, logs)
        try:
            # the pull: the root (3 MB) cannot hold the image
            ref = pod_images["busybox"]
            with pytest.raises(grpc.RpcError) as info:
                image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
            assert "no space left" in info.value.details()
            assert image.ListImages(pb.ListImagesRequest()).images == []
            subprocess.run(["mount", "-o", "remount,size=64m", str(daemon.root)], check=True)
            image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)

            # the create: the state directory is full
            pod = env.pod_config()
            pod_id = env.run_pod(pod)
            filler = _fill(daemon.state)
            config_c = env.container_config("talker", ["sh", "-c", "yes talking"])
            with pytest.raises(grpc.RpcError) as info:
                env.create(pod_id, pod, config_c)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()
            assert runtime.ListContainers(pb.ListContainersRequest()).containers == []
            filler.unlink()
            ctr = env.create(pod_id, pod, config_c)  # same name: nothing stayed reserved

            # log writes: the log filesystem (1 MB) fills up under a chatty container
            env.start(ctr)
            log = Path(env.status(ctr).log_path)
            wait_for_content(log, lambda text: b"talking" in text, timeout=30)
            _fill(logs)
            assert env.status(ctr).state == pb.CONTAINER_RUNNING
            assert env.exec(ctr, ["echo", "still here"]).stdout == b"still here\n"
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=30)
            assert runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
        finally:
            daemon.close()
