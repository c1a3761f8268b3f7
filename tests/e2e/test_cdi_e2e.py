"""CDI end to end: a spec file the test writes into the daemon's CDI directory injects a
device node (the host's /dev/null under another name), an environment variable and a bind
mount, asked for by the CRI's CDI_devices field or a ``cdi.k8s.io/`` annotation; checked
from inside the running container. An unknown device fails CreateContainer with
INVALID_ARGUMENT naming it, and ``pinnace cdi ls`` lists what the daemon knows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import main as cli
from tests.support import images
from tests.support.daemon import Pinnaced
from tests.support.push import push_image
from tests.support.registry import Registry


@pytest.fixture(scope="module")
def cdi_images(registry: Registry) -> dict[str, str]:
    box = images.busybox_image(config=images.ImageConfig(cmd=("/bin/sh",), stop_signal=""))
    pause = images.busybox_image(
        config=images.ImageConfig(cmd=None, entrypoint=("/bin/sleep", "infinity"))
    )
    push_image(registry.url, "test/cdibox", "v1", box)
    push_image(registry.url, "test/cdipause", "v1", pause)
    return {
        "busybox": f"{registry.host}/test/cdibox:v1",
        "pause": f"{registry.host}/test/cdipause:v1",
    }


@pytest.fixture
def daemon(pinnaced: Any, cdi_images: dict[str, str]) -> Iterator[Pinnaced]:
    d: Pinnaced = pinnaced(
        config_text=f'[images]\nsandbox_image = "{cdi_images["pause"]}"\n', start=False
    )
    d.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    runtime, image = d.clients()
    for ref in cdi_images.values():
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    yield d
    for s in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))


def _write_spec(d: Pinnaced, shared: Path) -> None:
    d.cdi_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "cdiVersion": "0.6.0",
        "kind": "test.example.com/fake",
        "containerEdits": {"env": ["FAKE_VENDOR=pinnace-test"]},
        "devices": [
            {
                "name": "null0",
                "containerEdits": {
                    "deviceNodes": [{"path": "/dev/fake-null", "hostPath": "/dev/null"}],
                    "env": ["FAKE_DEVICE=null0"],
                    "mounts": [
                        {"hostPath": str(shared), "containerPath": "/cdi-data", "options": ["ro"]}
                    ],
                },
            }
        ],
    }
    # written under another name, then renamed: the daemon never reads half a file
    tmp = d.cdi_dir / ".fake.json.tmp"
    tmp.write_text(json.dumps(spec))
    tmp.rename(d.cdi_dir / "fake.json")


def _pod(runtime: Any) -> tuple[str, pb.PodSandboxConfig]:
    name = f"cdi-{uuid.uuid4().hex[:8]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
        hostname=name,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )
    reply = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return reply.pod_sandbox_id, config


def _create(
    runtime: Any, pod: tuple[str, pb.PodSandboxConfig], image: str, name: str, **kw: Any
) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=["sleep", "3600"],
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
        **kw,
    )
    reply = runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1]),
        timeout=60,
    )
    return str(reply.container_id)


def _sh(runtime: Any, cid: str, script: str) -> str:
    reply = runtime.ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=30), timeout=60
    )
    assert reply.exit_code == 0, reply.stderr.decode()
    return str(reply.stdout.decode())


def test_cdi_device_is_injected(
    daemon: Pinnaced, cdi_images: dict[str, str], tmp_path: Path, capsys: Any
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from-the-cdi-mount\n")
    _write_spec(daemon, shared)
    runtime, _ = daemon.clients()
    pod = _pod(runtime)

    by_field = _create(
        runtime,
        pod,
        cdi_images["busybox"],
        "by-field",
        CDI_devices=[pb.CDIDevice(name="test.example.com/fake=null0")],
    )
    by_annotation = _create(
        runtime,
        pod,
        cdi_images["busybox"],
        "by-annotation",
        annotations={"cdi.k8s.io/test_fake": "test.example.com/fake=null0"},
    )
    for cid in (by_field, by_annotation):
        runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        out = _sh(
            runtime,
            cid,
            "test -c /dev/fake-null && echo data > /dev/fake-null && echo char-device; "
            "cat /cdi-data/hello; echo $FAKE_DEVICE $FAKE_VENDOR; "
            "touch /cdi-data/x 2>/dev/null || echo read-only",
        )
        assert out.split("\n") == [
            "char-device",
            "from-the-cdi-mount",
            "null0 pinnace-test",
            "read-only",
            "",
        ]

    with pytest.raises(grpc.RpcError) as err:
        _create(
            runtime,
            pod,
            cdi_images["busybox"],
            "unknown",
            CDI_devices=[pb.CDIDevice(name="test.example.com/fake=missing7")],
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "test.example.com/fake=missing7" in err.value.details()
    # the failed create left no container and released its name
    names = [c.metadata.name for c in runtime.ListContainers(pb.ListContainersRequest()).containers]
    assert sorted(names) == ["by-annotation", "by-field"]

    capsys.readouterr()
    assert cli.main(["--address", f"unix://{daemon.socket}", "cdi", "ls"]) == 0
    out = capsys.readouterr().out
    assert "test.example.com/fake=null0" in out and "fake.json" in out
