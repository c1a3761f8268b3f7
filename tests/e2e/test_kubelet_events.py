"""Evented PLEG: a pod's whole life seen through GetContainerEvents as the kubelet subscribes
(one stream, opened before the pod exists), each event carrying the pod's status (with the
metadata the kubelet keys it by) and its containers' statuses as they are after the fact:
sandbox started, containers created and started, one exiting on its own, one stopped, a
container removed, the pod stopped and removed."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import kubelet
from tests.support.registry import Registry

CREATED, STARTED, STOPPED, DELETED = (
    pb.CONTAINER_CREATED_EVENT,
    pb.CONTAINER_STARTED_EVENT,
    pb.CONTAINER_STOPPED_EVENT,
    pb.CONTAINER_DELETED_EVENT,
)


class Pleg:
    """The kubelet's side of GetContainerEvents: a stream read into a queue."""

    def __init__(self, runtime: Any) -> None:
        self._stream = runtime.GetContainerEvents(pb.GetEventsRequest())
        self._events: queue.Queue[pb.ContainerEventResponse] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._stream.initial_metadata()

    def _read(self) -> None:
        try:
            for event in self._stream:
                self._events.put(event)
        except grpc.RpcError:
            pass

    def expect(
        self, subject: str, kind: int, *, timeout: float = 30.0
    ) -> pb.ContainerEventResponse:
        """The next event about ``subject`` must be ``kind`` (events of others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if event.container_id != subject:
                continue
            assert event.container_event_type == kind, (
                f"{subject[:12]}: expected {pb.ContainerEventType.Name(kind)}, got "
                f"{pb.ContainerEventType.Name(event.container_event_type)}"
            )
            return event

    def close(self) -> None:
        self._stream.cancel()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def kubelet_images(registry: Registry) -> dict[str, str]:
    return kubelet.push_kubelet_images(registry.url)


@pytest.fixture
def node(
    pinnaced: Any, kubelet_images: dict[str, str], registry: Registry, tmp_path: Path
) -> Iterator[Any]:
    hosts = tmp_path / "certs.d"
    kubelet.route_recorded_registry(hosts, registry.url)
    daemon = pinnaced(
        config_text=f'[images]\nsandbox_image = "{kubelet_images["pause"]}"\n',
        registry_hosts_dir=hosts,
        start=False,
    )
    kubelet.loopback_network(daemon.cni_conf_dir)
    daemon.start()
    daemon.image.PullImage(
        pb.PullImageRequest(image=pb.ImageSpec(image=kubelet_images["busybox"])), timeout=120
    )
    k = kubelet.KubeletNode.make(tmp_path / "node")
    yield daemon, k, kubelet_images["busybox"]
    for s in daemon.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        daemon.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
    assert k.remove_cgroups() == []


def _statuses(event: pb.ContainerEventResponse) -> dict[str, pb.ContainerStatus]:
    return {s.id: s for s in event.containers_statuses}


def test_a_pods_life_through_get_container_events(node: Any) -> None:
    daemon, k, image = node
    runtime = daemon.runtime
    pleg = Pleg(runtime)
    try:
        uid = "0123456789abcdef0123456789abcdef"
        pod = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name="pleg", uid=uid, namespace="default"),
            hostname="pleg",
            log_directory=str(k.log_root / f"default_pleg_{uid}"),
            labels={"io.kubernetes.pod.uid": uid, "io.kubernetes.pod.name": "pleg"},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{k.cgroup_top}/besteffort/pod{uid}",
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(
                        pid=pb.CONTAINER, userns_options=pb.UserNamespace(mode=pb.NODE)
                    )
                ),
            ),
        )
        pod_id = runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=pod), timeout=120
        ).pod_sandbox_id
        started = pleg.expect(pod_id, STARTED)
        assert started.pod_sandbox_status.metadata.uid == uid
        assert started.pod_sandbox_status.state == pb.SANDBOX_READY

        def container(name: str, command: list[str]) -> str:
            config = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=name),
                image=pb.ImageSpec(image=image, user_specified_image=image),
                command=command,
                log_path=f"{name}/0.log",
                labels={"io.kubernetes.container.name": name, "io.kubernetes.pod.uid": uid},
                linux=pb.LinuxContainerConfig(
                    resources=pb.LinuxContainerResources(
                        cpu_period=100000,
                        cpu_shares=2,
                        oom_score_adj=1000,
                        hugepage_limits=[
                            pb.HugepageLimit(page_size="2MB"),
                            pb.HugepageLimit(page_size="1GB"),
                        ],
                    ),
                    security_context=pb.LinuxContainerSecurityContext(
                        namespace_options=pb.NamespaceOption(
                            pid=pb.CONTAINER, userns_options=pb.UserNamespace(mode=pb.NODE)
                        )
                    ),
                ),
            )
            return runtime.CreateContainer(
                pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
            ).container_id

        # a container that exits on its own (the kubelet learns of it only from the stream)
        quick = container("quick", ["sh", "-c", "exit 3"])
        created = pleg.expect(quick, CREATED)
        assert _statuses(created)[quick].state == pb.CONTAINER_CREATED
        assert created.pod_sandbox_status.metadata.uid == uid
        runtime.StartContainer(pb.StartContainerRequest(container_id=quick))
        pleg.expect(quick, STARTED)
        died = pleg.expect(quick, STOPPED)
        status = _statuses(died)[quick]
        assert (status.state, status.exit_code, status.reason) == (pb.CONTAINER_EXITED, 3, "Error")
        assert status.image.image == image
        assert died.pod_sandbox_status.state == pb.SANDBOX_READY

        # a long-running one, stopped by the kubelet
        main = container("main", ["sleep", "3600"])
        pleg.expect(main, CREATED)
        runtime.StartContainer(pb.StartContainerRequest(container_id=main))
        running = pleg.expect(main, STARTED)
        assert _statuses(running)[main].state == pb.CONTAINER_RUNNING
        assert _statuses(running)[quick].state == pb.CONTAINER_EXITED  # every container of the pod
        runtime.StopContainer(pb.StopContainerRequest(container_id=main, timeout=0))
        stopped = pleg.expect(main, STOPPED)
        assert _statuses(stopped)[main].state == pb.CONTAINER_EXITED
        assert _statuses(stopped)[main].exit_code == 137

        runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=quick))
        removed = pleg.expect(quick, DELETED)
        assert quick not in _statuses(removed) and main in _statuses(removed)
        assert removed.pod_sandbox_status.metadata.uid == uid

        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        pod_stopped = pleg.expect(pod_id, STOPPED)
        assert pod_stopped.pod_sandbox_status.state == pb.SANDBOX_NOTREADY
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        # the pod's last container and the pod itself: still keyed by the pod's uid
        last = pleg.expect(main, DELETED)
        assert last.pod_sandbox_status.metadata.uid == uid
        gone = pleg.expect(pod_id, DELETED)
        assert gone.pod_sandbox_status.metadata.uid == uid
        assert gone.pod_sandbox_status.id == pod_id
        assert gone.pod_sandbox_status.state == pb.SANDBOX_NOTREADY
        assert list(gone.containers_statuses) == []
        assert all(e.created_at > 0 for e in (started, created, died, gone))
    finally:
        pleg.close()
