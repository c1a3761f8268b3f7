"""Pod networking end to end with the real CNI plugins (bridge, host-local, portmap, loopback):
pods reach each other and the host reaches them, hostPorts answer on 127.0.0.1, a failing
plugin fails RunPodSandbox cleanly, and the event streams tell a pod's whole life in order.

Network safety: each test's bridge has its own name and a 10.213.x.0/24 subnet, masquerading
is off, and traffic flows only between this host and pods the test made."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from cri.api.pinnace.events.v1 import events_pb2 as epb
from cri.api.pinnace.events.v1 import events_pb2_grpc as epb_grpc
from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import Pinnaced, mounts_under
from tests.support.push import push_image
from tests.support.registry import Registry


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def net_images(registry: Registry) -> dict[str, str]:
    box = images.busybox_image()
    push_image(registry.url, "test/netbox", "v1", box)
    return {"busybox": f"{registry.host}/test/netbox:v1"}


class Network:
    """A bridge network of this test: a conflist in the daemon's conf dir; torn down after."""

    def __init__(self, conf_dir: Path, data_dir: Path) -> None:
        token = uuid.uuid4().int
        self.bridge = f"pnt{token % 10**8:08d}"[:15]
        self.subnet_octet = 100 + token % 150
        self.subnet = f"10.213.{self.subnet_octet}.0/24"
        self.data_dir = data_dir
        self.name = f"e2e-{token % 10**6}"
        conflist = {
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(data_dir),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-e2e.conflist").write_text(json.dumps(conflist))

    def reservations(self) -> list[str]:
        directory = self.data_dir / self.name
        if not directory.is_dir():
            return []
        return [p.name for p in directory.iterdir() if p.name.startswith("10.")]

    def veths(self) -> list[str]:
        out = subprocess.run(
            ["ip", "-o", "link", "show", "master", self.bridge],
            capture_output=True,
            text=True,
        )
        return [line for line in out.stdout.splitlines() if line.strip()]

    def teardown(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@pytest.fixture
def net_env(pinnaced, net_images, tmp_path) -> Iterator[tuple[Pinnaced, Network, dict[str, str]]]:
    daemon = pinnaced(start=False)
    network = Network(daemon.cni_conf_dir, tmp_path / "ipam")
    try:
        daemon.start()
        runtime, image = daemon.clients()
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=net_images["busybox"])))
        yield daemon, network, net_images
        runtime = daemon.runtime  # a test may have restarted the daemon (a new channel)
        for sandbox in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id))
        assert mounts_under([daemon.root, daemon.state]) == []
        assert network.veths() == []
        assert network.reservations() == []
    finally:
        network.teardown()


def _pod(name: str, **kwargs: Any) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="net"),
        hostname=name,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
        **kwargs,
    )


def _run(
    runtime: Any, config: pb.PodSandboxConfig, image: str, command: list[str]
) -> tuple[str, str]:
    pod_id = runtime.RunPodSandbox(
        pb.RunPodSandboxRequest(config=config), timeout=120
    ).pod_sandbox_id
    ctr = runtime.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod_id,
            sandbox_config=config,
            config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="main"),
                image=pb.ImageSpec(image=image),
                command=command,
                linux=pb.LinuxContainerConfig(
                    security_context=pb.LinuxContainerSecurityContext(
                        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                    )
                ),
            ),
        )
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=ctr))
    return pod_id, ctr


SERVER = [
    "sh",
    "-c",
    "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www",
]


def _get(url: str) -> str:
    # the pod's server may still be binding: retry connection refusals within a deadline
    with httpx.Client(timeout=5, transport=httpx.HTTPTransport(retries=20)) as client:
        return client.get(url).text


def test_pods_get_ips_reach_each_other_and_the_host_reaches_them(net_env) -> None:
    daemon, network, imgs = net_env
    runtime, _ = daemon.clients()
    host_port = _free_port()
    a_config = _pod(
        "pod-a",
        port_mappings=[
            pb.PortMapping(
                protocol=pb.TCP, container_port=8080, host_port=host_port, host_ip="127.0.0.1"
            )
        ],
        dns_config=pb.DNSConfig(servers=["10.213.0.53"], searches=["e2e.local"]),
    )
    a_id, a_ctr = _run(runtime, a_config, imgs["busybox"], SERVER)
    b_id, b_ctr = _run(runtime, _pod("pod-b"), imgs["busybox"], ["sleep", "1000"])

    a_status = runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=a_id)).status
    b_status = runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=b_id)).status
    a_ip, b_ip = a_status.network.ip, b_status.network.ip
    prefix = f"10.213.{network.subnet_octet}."
    assert a_ip.startswith(prefix) and b_ip.startswith(prefix) and a_ip != b_ip
    assert sorted(network.reservations()) == sorted([a_ip, b_ip])

    # the host reaches pod A; pod B reaches pod A; the hostPort answers on 127.0.0.1
    assert _get(f"http://{a_ip}:8080/").strip() == "pod-a"
    fetched = runtime.ExecSync(
        pb.ExecSyncRequest(
            container_id=b_ctr, cmd=["wget", "-qO-", f"http://{a_ip}:8080/"], timeout=20
        )
    )
    assert fetched.exit_code == 0 and fetched.stdout.decode().strip() == "pod-a"
    assert _get(f"http://127.0.0.1:{host_port}/").strip() == "pod-a"

    # the container sees the DNS config and hostname it was given, and its own address
    resolv = runtime.ExecSync(
        pb.ExecSyncRequest(container_id=a_ctr, cmd=["cat", "/etc/resolv.conf"], timeout=10)
    ).stdout.decode()
    assert "nameserver 10.213.0.53" in resolv and "search e2e.local" in resolv
    addrs = runtime.ExecSync(
        pb.ExecSyncRequest(container_id=a_ctr, cmd=["ip", "-o", "-4", "addr"], timeout=10)
    ).stdout.decode()
    assert a_ip in addrs

    # removing a pod releases its address, its veth and its namespace
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=a_id))
    assert network.reservations() == [b_ip]
    assert len(network.veths()) == 1
    assert not any(Path(daemon.state / "sandboxes").glob(f"{a_id}*"))


def test_failing_plugin_fails_run_pod_sandbox_and_leaves_nothing(
    pinnaced, net_images, tmp_path
) -> None:
    bin_dir = tmp_path / "cni-bin"
    bin_dir.mkdir()
    plugin = bin_dir / "e2e-fail"
    plugin.write_text(
        "#!/bin/sh\n"
        'if [ "$CNI_COMMAND" = VERSION ]; then\n'
        '  echo \'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}\'; exit 0\n'
        "fi\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        '  echo \'{"cniVersion":"1.0.0","code":7,'
        '"msg":"e2e plugin refuses","details":"on purpose"}\'\n'
        "  exit 1\n"
        "fi\n"
        "exit 0\n"
    )
    plugin.chmod(0o755)
    daemon = pinnaced(start=False, extra_args=["--cni-bin-dir", str(bin_dir)])
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-fail.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "failing", "plugins": [{"type": "e2e-fail"}]})
    )
    daemon.start()
    runtime, _ = daemon.clients()
    with pytest.raises(grpc.RpcError) as info:
        runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=_pod("doomed")), timeout=60)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "e2e plugin refuses" in info.value.details()
    assert runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert mounts_under([daemon.root, daemon.state]) == []
    assert list((daemon.state / "sandboxes").iterdir()) == []


def test_network_not_ready_without_a_config(pinnaced) -> None:
    daemon = pinnaced()
    runtime, _ = daemon.clients()
    conditions = {c.type: c for c in runtime.Status(pb.StatusRequest()).status.conditions}
    assert conditions["NetworkReady"].status is False
    assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"
    # a valid config appears: the runtime notices without a restart
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
    )
    conditions = {c.type: c for c in runtime.Status(pb.StatusRequest()).status.conditions}
    assert conditions["NetworkReady"].status is True


def _collect(stream: Any, into: queue.Queue[Any]) -> None:
    try:
        for item in stream:
            into.put(item)
    except grpc.RpcError:
        pass


def test_event_streams_tell_a_pods_life_in_order(net_env) -> None:
    daemon, _network, imgs = net_env
    runtime, _ = daemon.clients()
    channel = grpc.insecure_channel(f"unix://{daemon.socket}")
    events: queue.Queue[Any] = queue.Queue()
    cri_events: queue.Queue[Any] = queue.Queue()
    sub = epb_grpc.EventsStub(channel).Subscribe(epb.SubscribeRequest())
    cri = runtime.GetContainerEvents(pb.GetEventsRequest())
    threading.Thread(target=_collect, args=(sub, events), daemon=True).start()
    threading.Thread(target=_collect, args=(cri, cri_events), daemon=True).start()
    # both streams are subscribed once their initial metadata arrived
    sub.initial_metadata()
    cri.initial_metadata()

    pod_id, ctr = _run(runtime, _pod("watched"), imgs["busybox"], ["sh", "-c", "exit 0"])
    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def topics_until(last: str) -> list[str]:
        seen = []
        while True:
            envelope = events.get(timeout=30)
            seen.append(envelope.topic)
            if envelope.topic == last:
                return seen

    seen = topics_until("/sandboxes/delete")
    expected = [
        "/sandboxes/netns-created",
        "/network/attached",
        "/sandboxes/start",
        "/containers/create",
        "/tasks/start",
        "/tasks/exit",
        "/containers/delete",
        "/sandboxes/netns-removing",
        "/network/detached",
        "/sandboxes/stop",
        "/sandboxes/delete",
    ]
    positions = [seen.index(topic) for topic in expected]
    assert positions == sorted(positions), seen

    kinds = []
    while len(kinds) < 4 or kinds[-1] != (pod_id, pb.CONTAINER_DELETED_EVENT):
        event = cri_events.get(timeout=30)
        kinds.append((event.container_id, event.container_event_type))
    container_kinds = [k for i, k in kinds if i == ctr]
    assert container_kinds == [
        pb.CONTAINER_CREATED_EVENT,
        pb.CONTAINER_STARTED_EVENT,
        pb.CONTAINER_STOPPED_EVENT,
        pb.CONTAINER_DELETED_EVENT,
    ]
    sub.cancel()
    cri.cancel()
    channel.close()


def test_restart_finishes_teardown_of_a_pod_cut_off_mid_setup(
    pinnaced, net_images, tmp_path
) -> None:
    """SIGKILL pinnaced while CNI ADD is running (after the bridge plugin gave the pod an IP):
    the restarted daemon releases the IP, the veth and the pinned namespace nobody owns."""
    bin_dir = tmp_path / "cni-bin"
    bin_dir.mkdir()
    fifo = tmp_path / "adding"
    os.mkfifo(fifo)
    plugin = bin_dir / "e2e-block"
    plugin.write_text(
        "#!/bin/sh\n"
        'if [ "$CNI_COMMAND" = VERSION ]; then\n'
        '  echo \'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}\'; exit 0\n'
        "fi\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        f"  echo $$ > {fifo}\n"
        "  exec sleep 600\n"
        "fi\n"
        "exit 0\n"
    )
    plugin.chmod(0o755)
    daemon = pinnaced(start=False, extra_args=["--cni-bin-dir", str(bin_dir)])
    network = Network(daemon.cni_conf_dir, tmp_path / "ipam")
    conf = daemon.cni_conf_dir / "10-e2e.conflist"
    conflist = json.loads(conf.read_text())
    conflist["plugins"].append({"type": "e2e-block"})
    conf.write_text(json.dumps(conflist))
    try:
        daemon.start()
        runtime, _ = daemon.clients()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(
                    runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=_pod("cut")), timeout=120)
                )
            except grpc.RpcError as exc:
                outcome.append(exc.code())

        thread = threading.Thread(target=run)
        thread.start()
        with open(fifo) as adding:  # opens when the plugin writes: the bridge ADD is done
            plugin_pid = int(adding.read().strip())
        assert len(network.reservations()) == 1 and len(network.veths()) == 1
        daemon.kill()
        os.kill(plugin_pid, signal.SIGKILL)
        thread.join(timeout=60)
        assert outcome and outcome[0] != grpc.StatusCode.OK

        daemon.restart()
        runtime, _ = daemon.clients()
        assert runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
        assert network.reservations() == []
        assert network.veths() == []
        assert mounts_under([daemon.root, daemon.state]) == []
    finally:
        network.teardown()


def test_update_runtime_config_renders_the_template(pinnaced, tmp_path) -> None:
    template = tmp_path / "template.conflist"
    template.write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "templated",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "pnttmpl0",
                        "ipMasq": False,
                        "ipam": {"type": "host-local", "subnet": "{{.PodCIDR}}"},
                    }
                ],
            }
        )
    )
    daemon = pinnaced(config_text=f'[network]\nconf_template = "{template}"\n')
    runtime, _ = daemon.clients()

    def network_ready() -> bool:
        conditions = runtime.Status(pb.StatusRequest()).status.conditions
        return {c.type: c.status for c in conditions}["NetworkReady"]

    assert network_ready() is False
    with pytest.raises(grpc.RpcError) as info:
        runtime.UpdateRuntimeConfig(
            pb.UpdateRuntimeConfigRequest(
                runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="x"))
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    runtime.UpdateRuntimeConfig(
        pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(
                network_config=pb.NetworkConfig(pod_cidr="10.213.77.0/24")
            )
        )
    )
    assert network_ready() is True
    rendered = json.loads(next(daemon.cni_conf_dir.glob("*.conflist")).read_text())
    assert rendered["plugins"][0]["ipam"]["subnet"] == "10.213.77.0/24"
