"""NRI end to end: a real pinnaced and the scripted plugin of ``tests/support/nri_plugin.py``
(its own framing, ttrpc and protobuf code) on the daemon's NRI socket.

Checked: registration (Configure, Synchronize), the event order of a pod whose container
exits on its own, plugins called in index order and each only for the events of its mask,
what List/Status show while a hook blocks, a failing hook and its retry, registration while
creations run, every adjustment kind seen from inside the container, conflicts between two
plugins, unsolicited updates and those of a create's answer, a plugin that dies, the plugin
metrics and ``nri ls`` counts, and NRI switched off."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import Pinnaced
from tests.support.nri_plugin import ScriptedPlugin, adjustment, memory_update
from tests.support.push import push_image
from tests.support.registry import Registry


@pytest.fixture(scope="module")
def nri_images(registry: Registry) -> dict[str, str]:
    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",), stop_signal=""))
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/nribox", "v1", box)
    push_image(registry.url, "test/nripause", "v1", pause)
    return {
        "busybox": f"{registry.host}/test/nribox:v1",
        "pause": f"{registry.host}/test/nripause:v1",
    }


class Node:
    """A daemon and CRI helpers."""

    def __init__(self, daemon: Pinnaced, images: dict[str, str]) -> None:
        self.daemon = daemon
        self.runtime, self.image = daemon.clients()
        self.images = images
        self.plugins: list[ScriptedPlugin] = []

    def plugin(self, **kwargs: Any) -> ScriptedPlugin:
        p = ScriptedPlugin(str(self.daemon.nri_socket), **kwargs)
        self.plugins.append(p)
        return p

    def pod_config(self, name: str = "") -> pb.PodSandboxConfig:
        name = name or f"nri-{uuid.uuid4().hex[:8]}"
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
            hostname=name,
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )

    def run_pod(self, config: pb.PodSandboxConfig) -> str:
        reply = self.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=60)
        return str(reply.pod_sandbox_id)

    def create(
        self, pod_id: str, pod: pb.PodSandboxConfig, name: str, command: list[str], **kw: Any
    ) -> str:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=self.images["busybox"]),
            command=command,
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
            **kw,
        )
        reply = self.runtime.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod),
            timeout=60,
        )
        return str(reply.container_id)

    def start(self, cid: str) -> None:
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)

    def sh(self, cid: str, script: str) -> str:
        reply = self.runtime.ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=30),
            timeout=60,
        )
        assert reply.exit_code == 0, reply.stderr.decode()
        return str(reply.stdout.decode())

    def pod_names(self) -> list[str]:
        items = self.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=5).items
        return [s.metadata.name for s in items]

    def container_names(self) -> list[str]:
        items = self.runtime.ListContainers(pb.ListContainersRequest(), timeout=5).containers
        return [c.metadata.name for c in items]

    def wait_exit(self, cid: str) -> None:
        events = self.runtime.GetContainerEvents(pb.GetEventsRequest())
        try:
            events.initial_metadata()
            status = self.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid))
            if status.status.state == pb.CONTAINER_EXITED:
                return
            for event in events:
                if (
                    event.container_id == cid
                    and event.container_event_type == pb.CONTAINER_STOPPED_EVENT
                ):
                    return
        finally:
            events.cancel()


def make_node(
    pinnaced: Any,
    nri_images: dict[str, str],
    *,
    config: str = "",
    prepare: Callable[[Pinnaced], None] | None = None,
) -> Node:
    d: Pinnaced = pinnaced(
        config_text=f'[images]\nsandbox_image = "{nri_images["pause"]}"\n{config}', start=False
    )
    d.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    if prepare is not None:
        prepare(d)
    d.start()
    n = Node(d, nri_images)
    for ref in nri_images.values():
        n.image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    return n


def close_node(n: Node) -> None:
    for p in n.plugins:
        p.close()
    for s in n.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        n.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))


@pytest.fixture
def node(pinnaced: Any, nri_images: dict[str, str]) -> Iterator[Node]:
    n = make_node(pinnaced, nri_images)
    yield n
    close_node(n)


def _nri_info(node: Node) -> dict[str, Any]:
    status = node.runtime.Status(pb.StatusRequest(verbose=True))
    return dict(json.loads(status.info["nri"]))


def test_registration_and_event_order(node: Node) -> None:
    existing = node.pod_config()
    node.run_pod(existing)
    plugin = node.plugin(name="order", index="10").start()
    assert plugin.configured["runtime_name"] == "pinnace"
    assert plugin.configured["request_timeout"] >= 10_000  # milliseconds
    assert plugin.synced is not None and existing.metadata.name in plugin.synced[0]
    (entry,) = _nri_info(node)["plugins"]
    assert (entry["index"], entry["name"]) == ("10", "order")

    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    cid = node.create(pod_id, pod, "once", ["sh", "-c", "exit 0"])
    node.start(cid)
    node.wait_exit(cid)
    node.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    node.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert plugin.events_of(pod.metadata.name) == [
        "RunPodSandbox",
        "CreateContainer",
        "PostCreateContainer",
        "StartContainer",
        "PostStartContainer",
        "StopContainer",
        "StopPodSandbox",
        "RemoveContainer",
        "RemovePodSandbox",
    ]
    # frames pinnace wrote stayed within what the Go multiplexer reads in one go
    assert 0 < plugin.max_frame_seen <= 4096
    calls = _nri_info(node)["plugins"][0]["calls"]
    assert calls >= 11


def test_events_go_in_index_order_and_follow_each_mask(node: Node) -> None:
    from tests.support.nri_plugin import EVENTS

    order: list[str] = []

    def recorder(name: str) -> Callable[[str, str], bytes]:
        def adjust(pod: str, ctr: str) -> bytes:
            order.append(name)
            return adjustment(env={f"BY_{name.upper()}": "1"})

        return adjust

    # registered in the reverse of their index order
    node.plugin(name="late", index="90", adjust=recorder("late")).start()
    node.plugin(name="early", index="10", adjust=recorder("early")).start()
    pod_events = (1 << (EVENTS["RunPodSandbox"] - 1)) | (1 << (EVENTS["StopPodSandbox"] - 1))
    narrow = node.plugin(name="narrow", index="50", events=pod_events).start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    node.create(pod_id, pod, "c", ["sleep", "100"])
    assert order == ["early", "late"]
    node.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    node.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    assert narrow.events_of(pod.metadata.name) == ["RunPodSandbox", "StopPodSandbox"]
    listed = [(p["index"], p["name"]) for p in _nri_info(node)["plugins"]]
    assert listed == [("10", "early"), ("50", "narrow"), ("90", "late")]
    # the conflict names the plugin that set the field first, in index order
    node.plugin(
        name="again", index="95", adjust=lambda p, c: adjustment(env={"BY_EARLY": "2"})
    ).start()
    other = node.pod_config()
    other_id = node.run_pod(other)
    with pytest.raises(grpc.RpcError) as err:
        node.create(other_id, other, "d", ["sleep", "100"])
    assert "plugins '10-early' and '95-again' both tried to set env 'BY_EARLY'" in (
        err.value.details()
    )


def test_blocked_hooks_keep_the_object_invisible_but_list_and_status_answer(node: Node) -> None:
    hooks = (
        "RunPodSandbox",
        "CreateContainer",
        "StartContainer",
        "StopPodSandbox",
        "RemovePodSandbox",
    )
    blocks = {name: threading.Event() for name in hooks}
    plugin = node.plugin(
        name="blocker", block=blocks, entered={name: threading.Event() for name in hooks}
    ).start()
    pod = node.pod_config()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(node.run_pod, pod)
        assert plugin.entered["RunPodSandbox"].wait(30)
        assert pod.metadata.name not in node.pod_names()  # List answers, without the pod
        early_id = plugin.pod_id(pod.metadata.name)
        with pytest.raises(grpc.RpcError) as err:
            node.runtime.PodSandboxStatus(
                pb.PodSandboxStatusRequest(pod_sandbox_id=early_id), timeout=5
            )
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:  # fails at once, does not wait for the pod
            node.create(early_id, pod, "too-early", ["sleep", "100"])
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        blocks["RunPodSandbox"].set()
        pod_id = running.result(timeout=60)
        assert pod.metadata.name in node.pod_names()

        creating = pool.submit(node.create, pod_id, pod, "held", ["sleep", "100"])
        assert plugin.entered["CreateContainer"].wait(30)
        assert "held" not in node.container_names()
        status = node.runtime.PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=5
        )
        assert status.status.state == pb.SANDBOX_READY
        blocks["CreateContainer"].set()
        cid = creating.result(timeout=60)
        assert "held" in node.container_names()

        starting = pool.submit(node.start, cid)
        assert plugin.entered["StartContainer"].wait(30)
        status = node.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=cid), timeout=5
        )
        assert status.status.state == pb.CONTAINER_CREATED  # not started before plugins agree
        blocks["StartContainer"].set()
        starting.result(timeout=60)

        stopping = pool.submit(
            node.runtime.StopPodSandbox, pb.StopPodSandboxRequest(pod_sandbox_id=pod_id)
        )
        assert plugin.entered["StopPodSandbox"].wait(30)
        # the hook runs after the containers stopped, while they are still listed
        (listed,) = node.runtime.ListContainers(pb.ListContainersRequest(), timeout=5).containers
        assert (listed.id, listed.state) == (cid, pb.CONTAINER_EXITED)
        blocks["StopPodSandbox"].set()
        stopping.result(timeout=60)

        removing = pool.submit(
            node.runtime.RemovePodSandbox, pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id)
        )
        assert plugin.entered["RemovePodSandbox"].wait(30)
        # a notification after the fact: the pod and its container are gone already
        assert pod.metadata.name not in node.pod_names()
        assert node.container_names() == []
        blocks["RemovePodSandbox"].set()
        removing.result(timeout=60)


def test_a_failing_hook_fails_the_call_and_a_retry_succeeds(node: Node) -> None:
    node.plugin(
        name="flaky", fail={"RunPodSandbox": ["not yet"], "CreateContainer": ["nope"]}
    ).start()
    pod = node.pod_config()
    with pytest.raises(grpc.RpcError) as err:
        node.run_pod(pod)
    assert "flaky" in err.value.details() and "not yet" in err.value.details()
    assert pod.metadata.name not in node.pod_names()
    pod_id = node.run_pod(pod)  # the same name again: released by the failure
    with pytest.raises(grpc.RpcError) as err:
        node.create(pod_id, pod, "c", ["sleep", "100"])
    assert "nope" in err.value.details()
    assert node.container_names() == []
    node.create(pod_id, pod, "c", ["sleep", "100"])
    assert node.container_names() == ["c"]


def test_registration_while_creations_run_misses_no_container(node: Node) -> None:
    slow = threading.Event()
    first = node.plugin(name="slow", index="20", block={"CreateContainer": slow}).start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    names = [f"c{i}" for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        creations = [pool.submit(node.create, pod_id, pod, n, ["sleep", "100"]) for n in names]
        # every creation is in flight (held in the first plugin's hook, not yet listed), and
        # the late plugin has been configured: without the sync lock its Synchronize would
        # now snapshot a node without these containers, and their CreateContainer events
        # went out before it joined
        assert first.wait_for_calls("CreateContainer", len(names))
        late = node.plugin(name="late", index="30")
        registering = pool.submit(late.start)
        assert late.configure_answered.wait(30)
        slow.set()
        for f in creations:
            f.result(timeout=60)
        registering.result(timeout=60)
    assert late.synced is not None
    seen = set(late.synced[1]) | {c for m, _p, c in late.log if m == "CreateContainer"}
    assert set(names) <= seen
    del first


def test_adjustments_reach_the_container(node: Node, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note").write_text("mounted-by-nri\n")
    limit = 96 * 1024 * 1024

    def adjust(pod: str, ctr: str) -> bytes:
        return adjustment(
            env={"NRI_ADJUSTED": "yes"},
            annotations={"example.com/nri": "annotated"},
            mounts=[("/nri-data", str(shared), ["ro", "rbind"])],
            rlimits=[("RLIMIT_NOFILE", 1234, 1234)],
            devices=[("/dev/nri-null", "c", 1, 3)],
            memory_limit=limit,
        )

    node.plugin(name="adjuster", adjust=adjust).start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    cid = node.create(pod_id, pod, "adjusted", ["sleep", "100"])
    node.start(cid)
    out = node.sh(
        cid,
        "echo $NRI_ADJUSTED; cat /nri-data/note; ulimit -n; "
        "test -c /dev/nri-null && echo x > /dev/nri-null && echo device; "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
        "|| cat /sys/fs/cgroup/memory.max",
    )
    assert out.split() == ["yes", "mounted-by-nri", "1234", "device", str(limit)]
    spec = json.loads((node.daemon.state / "containers" / cid / "config.json").read_text())
    assert spec["annotations"]["example.com/nri"] == "annotated"


def test_two_plugins_setting_one_field_fail_the_create_naming_both(node: Node) -> None:
    node.plugin(name="one", index="10", adjust=lambda p, c: adjustment(env={"X": "1"})).start()
    node.plugin(name="two", index="20", adjust=lambda p, c: adjustment(env={"X": "2"})).start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    with pytest.raises(grpc.RpcError) as err:
        node.create(pod_id, pod, "c", ["sleep", "100"])
    assert "10-one" in err.value.details() and "20-two" in err.value.details()


def test_unsolicited_update_and_a_dead_plugin(node: Node) -> None:
    plugin = node.plugin(name="updater").start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    cid = node.create(pod_id, pod, "c", ["sleep", "100"])
    node.start(cid)
    limit = 80 * 1024 * 1024
    assert plugin.update_containers([memory_update(cid, limit)]) == []
    seen = node.sh(cid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip()
    assert int(seen) == limit
    plugin.close()  # the plugin dies: CRI calls go on without it
    cid2 = node.create(pod_id, pod, "after", ["sleep", "100"])
    node.start(cid2)
    assert _nri_info(node)["plugins"] == []


def test_updates_in_a_create_answer_reach_other_containers(node: Node) -> None:
    from cri.api.pinnace.events.v1 import events_pb2 as epb
    from cri.api.pinnace.events.v1 import events_pb2_grpc as epb_grpc
    from tests.support.daemon import cri_channel

    limit = 72 * 1024 * 1024
    first: list[str] = []
    node.plugin(
        name="rebalancer",
        create_updates=lambda p, c: [memory_update(first[0], limit)] if c == "second" else [],
    ).start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    first.append(node.create(pod_id, pod, "first", ["sleep", "100"]))
    node.start(first[0])
    channel = cri_channel(node.daemon.socket)
    try:
        updates = epb_grpc.EventsStub(channel).Subscribe(
            epb.SubscribeRequest(
                filters=[f'topic=="/containers/update",event.container_id=="{first[0]}"']
            ),
            timeout=60,
        )
        updates.initial_metadata()  # subscribed
        node.create(pod_id, pod, "second", ["sleep", "100"])
        assert next(updates).topic == "/containers/update"  # applied after the create
        updates.cancel()
    finally:
        channel.close()
    seen = node.sh(
        first[0],
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
        "|| cat /sys/fs/cgroup/memory.max",
    )
    assert int(seen) == limit


def test_update_events_and_nri_ls(node: Node, capsys: Any) -> None:
    from cri.cli import main as cli

    plugin = node.plugin(name="watcher", index="42").start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    cid = node.create(pod_id, pod, "c", ["sleep", "100"])
    node.start(cid)
    node.runtime.UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20)
        )
    )
    node.runtime.UpdatePodSandboxResources(
        pb.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod_id, resources=pb.LinuxContainerResources(cpu_shares=512)
        )
    )
    assert plugin.events_of(pod.metadata.name)[-4:] == [
        "UpdateContainer",
        "PostUpdateContainer",
        "UpdatePodSandbox",
        "PostUpdatePodSandbox",
    ]
    capsys.readouterr()
    assert cli.main(["--address", f"unix://{node.daemon.socket}", "nri", "ls"]) == 0
    out = capsys.readouterr().out
    assert "42" in out and "watcher" in out and "CreateContainer" in out


def test_metrics_and_nri_ls_count_calls_and_failures(
    pinnaced: Any, nri_images: dict[str, str], capsys: Any
) -> None:
    import socket

    import httpx

    from cri.cli import main as cli

    with socket.socket() as probe:  # a free loopback port for the metrics endpoint
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = make_node(pinnaced, nri_images, config=f'[metrics]\naddress = "127.0.0.1:{port}"\n')
    try:
        node.plugin(name="counted", index="33", fail={"RunPodSandbox": ["refused once"]}).start()
        pod = node.pod_config()
        with pytest.raises(grpc.RpcError):
            node.run_pod(pod)
        node.run_pod(pod)
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

        def sample(name: str, *labels: str) -> float:
            for line in body.splitlines():
                if line.startswith(name + "{") and all(label in line for label in labels):
                    return float(line.rsplit(" ", 1)[1])
            raise AssertionError(f"no sample {name} {labels}")

        total = "pinnace_nri_plugin_invocations_total"
        run = ('plugin="33-counted"', 'operation="RunPodSandbox"')
        assert sample(total, *run, 'result="error"') == 1
        assert sample(total, *run, 'result="ok"') == 1
        assert sample(total, 'plugin="33-counted"', 'operation="Synchronize"', 'result="ok"') == 1
        count = "pinnace_nri_plugin_duration_seconds_count"
        assert sample(count, 'operation="RunPodSandbox"') == 2
        capsys.readouterr()
        assert cli.main(["--address", f"unix://{node.daemon.socket}", "nri", "ls"]) == 0
        row = next(line for line in capsys.readouterr().out.splitlines() if "counted" in line)
        # Configure, Synchronize and two RunPodSandbox calls; one of them failed
        assert row.split()[-2:] == ["4", "1"]
    finally:
        close_node(node)


def test_nri_switched_off_serves_no_socket(pinnaced: Any, nri_images: dict[str, str]) -> None:
    from cri.cli import main as cli

    node = make_node(pinnaced, nri_images, config="[nri]\nenable = false\n")
    try:
        assert not node.daemon.nri_socket.exists()
        assert "nri" not in node.runtime.Status(pb.StatusRequest(verbose=True)).info
        assert cli.main(["--address", f"unix://{node.daemon.socket}", "nri", "ls"]) == 1
        pod = node.pod_config()
        node.create(node.run_pod(pod), pod, "c", ["sleep", "100"])  # the CRI works without it
    finally:
        close_node(node)


def test_a_validator_sees_the_adjustments_and_may_reject_them(node: Node) -> None:
    from tests.support.nri_plugin import ALL, parse

    node.plugin(name="adder", index="10", adjust=lambda p, c: adjustment(env={"V": "1"})).start()
    validator = node.plugin(name="checker", index="90", events=ALL, reject="no V allowed").start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    with pytest.raises(grpc.RpcError) as err:
        node.create(pod_id, pod, "c", ["sleep", "100"])
    assert "90-checker" in err.value.details() and "no V allowed" in err.value.details()
    (seen,) = validator.validated
    adjust = parse(seen[3][0])  # ValidateContainerAdjustmentRequest.adjust
    (env,) = adjust[4]
    assert parse(env)[1] == [b"V"]
    assert node.container_names() == []
    validator.reject = None
    node.create(pod_id, pod, "c", ["sleep", "100"])
    assert node.container_names() == ["c"]


def test_an_eviction_stops_the_container(node: Node) -> None:
    plugin = node.plugin(name="evictor").start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)
    cid = node.create(pod_id, pod, "victim", ["sleep", "100"])
    node.start(cid)
    assert plugin.update_containers([], evict={cid: "too hungry"}) == []
    status = node.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert status.state == pb.CONTAINER_EXITED


def test_infra_containers_are_never_shown(node: Node) -> None:
    pod = node.pod_config()
    pod.linux.security_context.namespace_options.pid = pb.POD  # shared: an infra container
    pod_id = node.run_pod(pod)
    node.create(pod_id, pod, "member", ["sleep", "100"])
    plugin = node.plugin(name="census").start()
    assert plugin.synced is not None and plugin.synced[1] == ["member"]


def test_invalid_registration_is_refused(node: Node) -> None:
    plugin = node.plugin(name="bad name", index="7")
    code, message = plugin.register_only()
    assert code == 3 and "invalid plugin" in message


PREINSTALLED = """\
import os, socket, sys
sys.path.insert(0, {repo!r})
from tests.support.nri_plugin import ScriptedPlugin

out = {out!r}
env = os.environ
plugin = ScriptedPlugin("", name=env["NRI_PLUGIN_NAME"], index=env["NRI_PLUGIN_IDX"], log_file=out)
plugin.start(sock=socket.socket(fileno=int(env["NRI_PLUGIN_SOCKET"])))
with open(out + ".config", "w") as f:
    f.write(plugin.configured["config"])
plugin.closed.wait()  # until pinnaced closes the connection (or kills the plugin)
"""


def test_a_preinstalled_plugin_is_started_with_its_config(
    pinnaced: Any, nri_images: dict[str, str], tmp_path: Path
) -> None:
    import sys

    from tests.support.watch import wait_for_content

    out = tmp_path / "events"

    def install(d: Pinnaced) -> None:
        d.nri_plugin_dir.mkdir()
        d.nri_config_dir.mkdir()
        script = d.nri_plugin_dir / "05-preinstalled"
        repo = str(Path(__file__).resolve().parents[2])
        script.write_text(f"#!{sys.executable}\n" + PREINSTALLED.format(repo=repo, out=str(out)))
        script.chmod(0o755)
        (d.nri_config_dir / "preinstalled.conf").write_text("setting: 1\n")

    node = make_node(pinnaced, nri_images, prepare=install)
    (entry,) = _nri_info(node)["plugins"]
    assert (entry["index"], entry["name"], entry["external"]) == ("05", "preinstalled", False)
    config = wait_for_content(tmp_path / "events.config", lambda data: bool(data), timeout=30)
    assert config == b"setting: 1\n"
    pod = node.pod_config()
    node.run_pod(pod)
    wait_for_content(out, lambda data: b"RunPodSandbox" in data, timeout=30)
    close_node(node)


def test_a_plugin_that_does_not_answer_is_dropped_and_the_call_goes_on(
    pinnaced: Any, nri_images: dict[str, str]
) -> None:
    node = make_node(pinnaced, nri_images, config='[nri]\nplugin_request_timeout = "1s"\n')
    hung = node.plugin(name="hung", block={"RunPodSandbox": threading.Event()}).start()
    pod = node.pod_config()
    pod_id = node.run_pod(pod)  # succeeds once the plugin's time is up
    assert pod_id and _nri_info(node)["plugins"] == []
    assert hung.closed.wait(10)  # pinnaced closed the connection of the plugin it dropped
    close_node(node)
