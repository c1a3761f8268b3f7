"""Exec, attach and port-forward end to end: a real pinnaced, real containers under conmon,
and two independent clients: our SPDY client (``tests/support/spdy_client.py``) and, for
WebSocket, the ``kubernetes`` package's own ``kubernetes.stream`` client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import Pinnaced
from tests.support.push import push_image
from tests.support.registry import Registry
from tests.support.spdy_client import SpdyClient, UpgradeRefused, remote_command

BOX = "test/streambox"


@dataclass
class Env:
    daemon: Pinnaced
    runtime: Any
    pod_id: str
    pod_config: pb.PodSandboxConfig
    image: str

    def container(self, name: str, command: list[str], **kwargs: Any) -> str:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=self.image),
            command=command,
            log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
            **kwargs,
        )
        cid = self.runtime.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=self.pod_id, config=config, sandbox_config=self.pod_config
            ),
            timeout=60,
        ).container_id
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        return str(cid)

    def exec_url(self, cid: str, cmd: list[str], **kwargs: Any) -> str:
        kwargs.setdefault("stdout", True)
        kwargs.setdefault("stderr", not kwargs.get("tty", False))
        return str(
            self.runtime.Exec(pb.ExecRequest(container_id=cid, cmd=cmd, **kwargs), timeout=30).url
        )


@pytest.fixture(scope="module")
def env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",), stop_signal=""))
    push_image(registry.url, BOX, "v1", box)
    ref = f"{registry.host}/{BOX}:v1"
    base = tmp_path_factory.mktemp("streaming")
    from tests.support.daemon import hosts_toml

    hosts_toml(base / "certs.d", registry.host, plain_http=True)
    daemon = Pinnaced(
        base,
        registry_hosts_dir=base / "certs.d",
        config_text=f'[images]\nsandbox_image = "{ref}"\n',
    )
    daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (daemon.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    daemon.start()
    try:
        runtime, image = daemon.clients()
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
        name = f"stream-{uuid.uuid4().hex[:6]}"
        pod_config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
            hostname=name,
            log_directory=str(base / "logs"),
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )
        pod_id = runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=pod_config), timeout=120
        ).pod_sandbox_id
        yield Env(daemon, runtime, pod_id, pod_config, ref)
        for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
    finally:
        leftovers = daemon.close()
        assert not leftovers, leftovers


@pytest.fixture(scope="module")
def sleeper(env: Env) -> str:
    return env.container("sleeper", ["sleep", "100000"])


def test_rpc_validation(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["true"])
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    cases = [
        (pb.ExecRequest(container_id="nope", cmd=["true"], stdout=True), grpc.StatusCode.NOT_FOUND),
        (pb.ExecRequest(container_id=sleeper, cmd=["true"]), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.ExecRequest(container_id=sleeper, cmd=["sh"], tty=True, stdout=True, stderr=True),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.ExecRequest(container_id=sleeper, cmd=[], stdout=True),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as err:
            env.runtime.Exec(request, timeout=30)
        assert err.value.code() == code, request
    with pytest.raises(grpc.RpcError) as err:
        env.runtime.Attach(pb.AttachRequest(container_id="nope", stdout=True), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    pf = env.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=env.pod_id, port=[80]))
    assert "/portforward/" in pf.url
    with pytest.raises(grpc.RpcError) as err:
        env.runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id="nope", port=[80]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_exec_over_spdy_stdout_stderr_exit_code(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    got = remote_command(url)
    assert got.protocol == "v4.channel.k8s.io"
    assert got.stdout == b"out\n"
    assert got.stderr == b"err\n"
    assert got.exit_code == 3
    assert got.status["reason"] == "NonZeroExitCode"
    ok = remote_command(env.exec_url(sleeper, ["true"]))
    assert ok.status == {"metadata": {}, "status": "Success"}


def test_exec_stdin_reaches_eof(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["sh", "-c", "cat; echo done"], stdin=True)
    data = b"hello\n" * 20000  # more than one window and several conmon packets
    got = remote_command(url, stdin=data)
    assert got.stdout == data + b"done\n"
    assert got.exit_code == 0


def test_token_is_single_use_and_unknown_tokens_are_404(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["true"])
    remote_command(url)
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url)
    assert err.value.status == 404
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAAAAAAAA")
    assert err.value.status == 404


def test_malformed_upgrade_is_400_and_unknown_protocols_403(env: Env, sleeper: str) -> None:
    url = env.exec_url(sleeper, ["true"])
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url, upgrade="h2c")
    assert err.value.status == 400
    with pytest.raises(UpgradeRefused) as err:
        SpdyClient(url, protocols=("v9.channel.k8s.io",))
    assert err.value.status == 403
    assert "v4.channel.k8s.io" in err.value.headers["x-accepted-stream-protocol-versions"]
