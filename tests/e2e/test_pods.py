"""Pods and containers end to end: real pinnaced, runc (and crun), conmon, busybox images from
the local registry, driven only through the CRI with the generated client. Every test leaves
no mounts, pinned namespaces, cgroups or processes (checked in ``pod_env``'s teardown)."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import Pinnaced, cgroup_dirs_of, mounts_under
from tests.support.push import push_image
from tests.support.registry import Registry
from tests.support.watch import wait_for_content

BUSYBOX = "test/podbox"
PAUSE = "test/pause"


@pytest.fixture(scope="module")
def pod_images(registry: Registry) -> dict[str, str]:
    """A busybox image for containers and a 'pause' image (busybox sleeping forever)."""
    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",), stop_signal=""))
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, BUSYBOX, "v1", box)
    push_image(registry.url, PAUSE, "v1", pause)
    return {"busybox": f"{registry.host}/{BUSYBOX}:v1", "pause": f"{registry.host}/{PAUSE}:v1"}


@dataclass
class PodEnv:
    daemon: Pinnaced
    runtime: Any
    image: Any
    images: dict[str, str]
    log_dir: Path

    def pod_config(self, name: str = "", **kwargs: Any) -> pb.PodSandboxConfig:
        name = name or f"pod-{uuid.uuid4().hex[:8]}"
        # what kubelet sends: the pod's own network and IPC, one PID namespace per container
        kwargs.setdefault(
            "linux",
            pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
            hostname=kwargs.pop("hostname", name),
            log_directory=str(self.log_dir / name),
            **kwargs,
        )
        return config

    def run_pod(self, config: pb.PodSandboxConfig | None = None, handler: str = "") -> str:
        config = config or self.pod_config()
        reply = self.runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=handler), timeout=120
        )
        return str(reply.pod_sandbox_id)

    def container_config(self, name: str, command: list[str], **kwargs: Any) -> pb.ContainerConfig:
        kwargs.setdefault(
            "linux",
            pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=kwargs.pop("image", self.images["busybox"])),
            command=command,
            log_path=f"{name}.log",
            **kwargs,
        )

    def create(
        self, pod_id: str, pod_config: pb.PodSandboxConfig, config: pb.ContainerConfig
    ) -> str:
        reply = self.runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
            ),
            timeout=60,
        )
        return str(reply.container_id)

    def start(self, container_id: str) -> None:
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=container_id), timeout=60)

    def status(self, container_id: str) -> pb.ContainerStatus:
        return self.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=container_id)
        ).status

    def exec(self, container_id: str, cmd: list[str], timeout: int = 30) -> pb.ExecSyncResponse:
        return self.runtime.ExecSync(
            pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout), timeout=60
        )

    def watch_exits(self) -> ExitWatch:
        """Subscribe to GetContainerEvents now; ``wait(id)`` then awaits that container's stop
        event (the fact, not a poll) and returns its status."""
        return ExitWatch(self.runtime)


class ExitWatch:
    """A GetContainerEvents stream read by a thread into a queue."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        self._stream = runtime.GetContainerEvents(pb.GetEventsRequest())
        self._events: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._stream.initial_metadata()  # subscribed from here on

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._events.put(event)
        except grpc.RpcError:
            pass

    def wait(self, container_id: str, timeout: float = 30) -> pb.ContainerStatus:
        while True:
            event = self._events.get(timeout=timeout)
            if (
                event.container_id == container_id
                and event.container_event_type == pb.CONTAINER_STOPPED_EVENT
            ):
                return self._runtime.ContainerStatus(
                    pb.ContainerStatusRequest(container_id=container_id)
                ).status

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(timeout=10)


def _sandbox_traces(daemon: Pinnaced) -> list[str]:
    """What a sandbox or container could leave on the node: mounts under the daemon's dirs and
    live processes that name them."""
    return mounts_under([daemon.root, daemon.state])


@pytest.fixture
def pod_env(pinnaced, pod_images, tmp_path) -> Iterator[PodEnv]:
    config = f'[images]\nsandbox_image = "{pod_images["pause"]}"\n'
    daemon = pinnaced(config_text=config, start=False)
    # a network of the loopback plugin only: pods get a netns with lo, and no addresses
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    daemon.start()
    runtime, image = daemon.clients()
    for ref in pod_images.values():
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    env = PodEnv(daemon, runtime, image, pod_images, tmp_path / "logs")
    yield env
    # remove every pod; nothing may be left behind (env.runtime: a test may restart the daemon)
    pod_ids = [s.id for s in env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items]
    for pod_id in pod_ids:
        env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert env.runtime.ListContainers(pb.ListContainersRequest()).containers == []
    assert _sandbox_traces(daemon) == []
    # this daemon's own pod cgroup root: other daemons' pods on the host are not ours
    leftover = {str(d): _subdirs(d) for d in cgroup_dirs_of(daemon.cgroup_root) if _subdirs(d)}
    assert leftover == {}, f"pod cgroups left behind: {leftover}"


def _subdirs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def _log_lines(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        _ts, stream, tag, text = line.split(" ", 3)
        out.append((stream, tag, text))
    return out


def test_pod_lifecycle_with_logs_exec_and_stop(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config(
        hostname="lifecycle-host",
        labels={"app": "web"},
        dns_config=pb.DNSConfig(servers=["10.0.0.10"], searches=["svc.local"], options=["ndots:2"]),
    )
    pod_id = pod_env.run_pod(pod)
    status = pod_env.runtime.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
    ).status
    assert status.state == pb.SANDBOX_READY
    assert status.metadata.name == pod.metadata.name
    assert status.labels["app"] == "web"
    assert status.linux.namespaces.options.network == pb.POD
    assert status.created_at > 0

    ctr = pod_env.create(
        pod_id,
        pod,
        pod_env.container_config(
            "main",
            ["sh", "-c", "trap 'exit 0' TERM; echo hello; echo oops >&2; sleep 1000 & wait"],
            envs=[pb.KeyValue(key="GREETING", value=b"hi there")],
            labels={"tier": "main"},
        ),
    )
    assert pod_env.status(ctr).state == pb.CONTAINER_CREATED
    pod_env.start(ctr)
    running = pod_env.status(ctr)
    assert running.state == pb.CONTAINER_RUNNING
    assert running.started_at >= running.created_at > 0
    pulled = pod_env.image.ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=pod_env.images["busybox"]))
    ).image
    # as containerd: image_ref is the repo digest, image_id the image id
    assert running.image_ref in pulled.repo_digests
    assert running.image_id == pulled.id

    out = pod_env.exec(ctr, ["sh", "-c", "echo $GREETING; cat /etc/hostname; echo bad >&2; exit 3"])
    assert out.exit_code == 3
    assert out.stdout == b"hi there\nlifecycle-host\n"
    assert out.stderr == b"bad\n"
    resolv = pod_env.exec(ctr, ["cat", "/etc/resolv.conf"]).stdout.decode()
    assert "nameserver 10.0.0.10" in resolv and "search svc.local" in resolv

    with pytest.raises(grpc.RpcError) as info:
        pod_env.exec(ctr, ["sleep", "10"], timeout=1)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    log = Path(pod_env.status(ctr).log_path)
    assert log.is_absolute()
    lines = _log_lines(log)
    assert ("stdout", "F", "hello") in lines and ("stderr", "F", "oops") in lines

    # list filters: id prefix, state, labels
    found = pod_env.runtime.ListContainers(
        pb.ListContainersRequest(filter=pb.ContainerFilter(id=ctr[:13]))
    ).containers
    assert [c.id for c in found] == [ctr]
    by_label = pod_env.runtime.ListContainers(
        pb.ListContainersRequest(filter=pb.ContainerFilter(label_selector={"tier": "main"}))
    ).containers
    assert [c.id for c in by_label] == [ctr]
    pods = pod_env.runtime.ListPodSandbox(
        pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(id=pod_id[:13]))
    ).items
    assert [p.id for p in pods] == [pod_id]

    pod_env.runtime.StopContainer(pb.StopContainerRequest(container_id=ctr, timeout=10))
    stopped = pod_env.status(ctr)
    assert stopped.state == pb.CONTAINER_EXITED
    assert stopped.exit_code == 0 and stopped.reason == "Completed"
    assert stopped.finished_at >= stopped.started_at
    # stopping again, and stopping or removing unknown ids, succeed
    pod_env.runtime.StopContainer(pb.StopContainerRequest(container_id=ctr, timeout=1))
    pod_env.runtime.StopContainer(pb.StopContainerRequest(container_id="f" * 64))
    pod_env.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id="f" * 64))

    pod_env.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    assert (
        pod_env.runtime.PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
        ).status.state
        == pb.SANDBOX_NOTREADY
    )
    pod_env.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    with pytest.raises(grpc.RpcError) as info:
        pod_env.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        pod_env.status(ctr)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_exit_codes_and_reasons(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    failing = pod_env.create(pod_id, pod, pod_env.container_config("fails", ["sh", "-c", "exit 3"]))
    ok = pod_env.create(pod_id, pod, pod_env.container_config("ok", ["true"]))
    exits = pod_env.watch_exits()
    pod_env.start(failing)
    pod_env.start(ok)
    status = exits.wait(failing)
    assert (status.exit_code, status.reason) == (3, "Error")
    status = exits.wait(ok)
    assert (status.exit_code, status.reason) == (0, "Completed")
    exits.close()


def test_bad_input(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)

    with pytest.raises(grpc.RpcError) as info:
        pod_env.create(
            pod_id, pod, pod_env.container_config("x", ["true"], image="example.test/none:1")
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "example.test/none:1" in info.value.details()

    missing = pod_env.create(pod_id, pod, pod_env.container_config("nocmd", ["/no/such/binary"]))
    with pytest.raises(grpc.RpcError) as info:
        pod_env.start(missing)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "/no/such/binary" in info.value.details()
    status = pod_env.status(missing)
    assert status.state == pb.CONTAINER_EXITED
    assert status.reason == "StartError"
    assert "/no/such/binary" in status.message

    with pytest.raises(grpc.RpcError) as info:
        pod_env.status("0" * 64)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.RpcError) as info:
        pod_env.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pb.PodSandboxConfig()))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(grpc.RpcError) as info:
        pod_env.run_pod(pod_env.pod_config(), handler="no-such-handler")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-handler" in info.value.details()


def test_failures_half_way_through_a_create_leave_nothing(pod_env: PodEnv) -> None:
    state = pod_env.daemon.state
    # the sandbox fails after its namespaces were pinned (a sysctl that is not namespaced)
    bad_pod = pod_env.pod_config(
        linux=pb.LinuxPodSandboxConfig(
            sysctls={"vm.swappiness": "10"},
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            ),
        )
    )
    with pytest.raises(grpc.RpcError) as info:
        pod_env.run_pod(bad_pod)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vm.swappiness" in info.value.details()
    assert list((state / "sandboxes").iterdir()) == []
    assert mounts_under([pod_env.daemon.root, state]) == []
    assert [d for d in cgroup_dirs_of(pod_env.daemon.cgroup_root) if _subdirs(d)] == []

    # the container fails after its rootfs was mounted (a user the image does not know)
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    mounts_of_pod = mounts_under([pod_env.daemon.root, state])
    config = pod_env.container_config(
        "nobody-here",
        ["true"],
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                run_as_username="no-such-user",
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER),
            )
        ),
    )
    with pytest.raises(grpc.RpcError) as info:
        pod_env.create(pod_id, pod, config)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no-such-user" in info.value.details()
    assert pod_env.runtime.ListContainers(pb.ListContainersRequest()).containers == []
    assert mounts_under([pod_env.daemon.root, state]) == mounts_of_pod
    assert list((state / "containers").iterdir()) == []


def test_names_retries_and_conflicts(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    first = pod_env.run_pod(pod)
    # kubelet's retry with the same config receives the same sandbox
    assert pod_env.run_pod(pod) == first
    other = pb.PodSandboxConfig()
    other.CopyFrom(pod)
    other.hostname = "different"
    with pytest.raises(grpc.RpcError) as info:
        pod_env.run_pod(other)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first in info.value.details()

    config = pod_env.container_config("c", ["sleep", "1000"])
    ctr = pod_env.create(first, pod, config)
    assert pod_env.create(first, pod, config) == ctr
    with pytest.raises(grpc.RpcError) as info:
        pod_env.create(first, pod, pod_env.container_config("c", ["sleep", "5"]))
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert ctr in info.value.details()


def test_shared_pid_namespace_uses_an_infra_container(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config(
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.POD)
            )
        )
    )
    pod_id = pod_env.run_pod(pod)
    ctr = pod_env.create(
        pod_id,
        pod,
        pod_env.container_config(
            "ps",
            ["sleep", "1000"],
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.POD)
                )
            ),
        ),
    )
    pod_env.start(ctr)
    # the infra process is PID 1 of the shared namespace, and the container sees it
    ps = pod_env.exec(ctr, ["ps", "-o", "pid,args"]).stdout.decode()
    assert "sleep infinity" in ps
    info = json.loads(
        pod_env.runtime.PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
        ).info["info"]
    )
    assert info["pid"] > 0


def test_host_network_pod(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config(
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER)
            )
        )
    )
    pod_id = pod_env.run_pod(pod)
    ctr = pod_env.create(pod_id, pod, pod_env.container_config("net", ["sleep", "1000"]))
    pod_env.start(ctr)
    host = os.uname().nodename
    assert pod_env.exec(ctr, ["hostname"]).stdout.decode().strip() == host
    status = pod_env.runtime.PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)
    ).status
    assert status.linux.namespaces.options.network == pb.NODE


def test_stats_update_and_reopen_log(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    ctr = pod_env.create(
        pod_id, pod, pod_env.container_config("busy", ["sh", "-c", "echo one; sleep 1000"])
    )
    pod_env.start(ctr)
    stats = pod_env.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=ctr)).stats
    assert stats.attributes.id == ctr
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0
    listed = pod_env.runtime.ListContainerStats(pb.ListContainerStatsRequest()).stats
    assert ctr in [s.attributes.id for s in listed]
    pod_stats = pod_env.runtime.PodSandboxStats(
        pb.PodSandboxStatsRequest(pod_sandbox_id=pod_id)
    ).stats
    assert pod_stats.attributes.id == pod_id
    assert [c.attributes.id for c in pod_stats.linux.containers] == [ctr]

    limit = 64 * 1024 * 1024
    pod_env.runtime.UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=ctr, linux=pb.LinuxContainerResources(memory_limit_in_bytes=limit)
        )
    )
    assert pod_env.status(ctr).resources.linux.memory_limit_in_bytes == limit
    seen = (
        pod_env.exec(
            ctr,
            [
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
                "|| cat /sys/fs/cgroup/memory.max",
            ],
        )
        .stdout.decode()
        .strip()
    )
    assert int(seen) == limit

    log = Path(pod_env.status(ctr).log_path)
    log.rename(log.with_suffix(".1"))
    pod_env.runtime.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=ctr))
    assert log.exists()
    pod_env.exec(ctr, ["sh", "-c", "echo after-reopen > /proc/1/fd/1"])
    assert any("after-reopen" in text for _, _, text in _wait_log(log, "after-reopen"))


def _wait_log(path: Path, needle: str, timeout: float = 10) -> list[tuple[str, str, str]]:
    """The log's lines once one contains ``needle`` (conmon writes asynchronously)."""
    wait_for_content(path, lambda data: needle.encode() in data, timeout=timeout)
    return _log_lines(path)


def test_containers_survive_a_daemon_crash(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    keeps = pod_env.create(
        pod_id,
        pod,
        pod_env.container_config(
            "keeps", ["sh", "-c", "while true; do echo tick; sleep 0.2; done"]
        ),
    )
    exits = pod_env.create(
        pod_id, pod, pod_env.container_config("exits", ["sh", "-c", "read x; exit 7"], stdin=True)
    )
    pod_env.start(keeps)
    pod_env.start(exits)
    keeps_pid = json.loads(
        pod_env.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=keeps, verbose=True)
        ).info["info"]
    )["pid"]
    exits_pid = json.loads(
        pod_env.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=exits, verbose=True)
        ).info["info"]
    )["pid"]

    pod_env.daemon.kill()
    # while pinnaced is down: one container keeps logging, the other is made to exit
    log = pod_env.log_dir / pod.metadata.name / "keeps.log"
    before = log.stat().st_size
    os.kill(exits_pid, signal.SIGKILL)
    os.kill(keeps_pid, 0)  # still alive
    pod_env.daemon.restart()
    pod_env.runtime, pod_env.image = pod_env.daemon.clients()

    assert pod_env.status(keeps).state == pb.CONTAINER_RUNNING
    # the exit that happened while pinnaced was down was recorded before it served again
    status = pod_env.status(exits)
    assert status.state == pb.CONTAINER_EXITED
    assert status.exit_code == 137
    assert status.finished_at > status.started_at
    assert pod_env.exec(keeps, ["echo", "alive"]).stdout == b"alive\n"
    _wait_log(log, "tick")
    assert log.stat().st_size > before
    assert [p.id for p in pod_env.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [
        pod_id
    ]


def test_crun_as_a_second_runtime_handler(pinnaced, pod_images, tmp_path) -> None:
    wrapper = Path(__file__).resolve().parents[2] / "deploy" / "crun-hybrid-cgroups"
    config = (
        f'[images]\nsandbox_image = "{pod_images["pause"]}"\n'
        '[runtime.handlers.runc]\nbinary = "/usr/sbin/runc"\n'
        f'[runtime.handlers.crun]\nbinary = "{wrapper}"\n'
    )
    daemon = pinnaced(config_text=config, start=False)
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    daemon.start()
    runtime, image = daemon.clients()
    image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=pod_images["busybox"])))
    env = PodEnv(daemon, runtime, image, pod_images, tmp_path / "logs")
    pod = env.pod_config()
    pod_id = env.run_pod(pod, handler="crun")
    status = runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id)).status
    assert status.runtime_handler == "crun"
    ctr = env.create(
        pod_id, pod, env.container_config("c", ["sh", "-c", "echo via-crun; sleep 1000"])
    )
    env.start(ctr)
    info = json.loads(
        runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr, verbose=True)).info[
            "info"
        ]
    )
    assert info["runtimeHandler"] == "crun"
    assert env.exec(ctr, ["echo", "exec-crun"]).stdout == b"exec-crun\n"
    assert ("stdout", "F", "via-crun") in _wait_log(Path(env.status(ctr).log_path), "via-crun")
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert mounts_under([daemon.root, daemon.state]) == []


def test_out_of_memory_is_reported_as_oomkilled(pod_env: PodEnv) -> None:
    pod = pod_env.pod_config()
    pod_id = pod_env.run_pod(pod)
    hog = pod_env.create(
        pod_id,
        pod,
        pod_env.container_config(
            "hog",
            ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(
                    memory_limit_in_bytes=32 * 1024 * 1024,
                    memory_swap_limit_in_bytes=32 * 1024 * 1024,
                ),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                ),
            ),
        ),
    )
    exits = pod_env.watch_exits()
    pod_env.start(hog)
    status = exits.wait(hog)
    exits.close()
    assert status.exit_code == 137
    assert status.reason == "OOMKilled"
