"""Layers that end where Go's archive/tar lets them end pull and run; layers cut inside a
header or a member's data are refused naming the layer. Layers written byte by byte
(tests/support/rawtar.py), pushed to the test registry, pulled by a real pinnaced."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import grpc
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import Pinnaced, mounts_under
from tests.support.layers import Compression
from tests.support.push import push_image
from tests.support.rawtar import BLOCK, RawTar
from tests.support.registry import Registry

LAST = b"the last member\n" * 40  # 640 bytes: its data ends inside a block


def layer() -> RawTar:
    return RawTar().directory("ends/").file("ends/first", b"first\n").file("ends/last", LAST)


def _cut(where: str) -> bytes:
    tar = layer().end(2)
    last = tar.parts[-1]
    return tar.build()[
        : {
            "data-end": last.data_end,
            "padding": last.data_end + 100,
            "boundary": last.end,
            "one-zero": last.end + BLOCK,
            "in-data": last.data + 10,
            "in-header": last.header + 200,
        }[where]
    ]


GOOD = ("data-end", "padding", "boundary", "one-zero")
BAD = {"in-data": "inside the data of 'ends/last'", "in-header": "inside a tar header"}


@pytest.fixture(scope="module")
def layer_images(registry: Registry) -> dict[str, tuple[str, str]]:
    """Image reference and cut layer's digest, by case (gzip and uncompressed layers)."""
    out = {}
    for where in (*GOOD, *BAD):
        compression: Compression = "none" if where in ("padding", "in-header") else "gzip"
        image = images.busybox_image(
            config=images.ImageConfig(cmd=("sleep", "1000")),
            extra_layers=(_cut(where),),
            compression=compression,
        )
        push_image(registry.url, "test/ends", where, image)
        out[where] = (f"{registry.host}/test/ends:{where}", image.layers[-1].blob.digest)
    return out


@pytest.fixture
def daemon(pinnaced, layer_images) -> Iterator[Pinnaced]:
    pause = layer_images["boundary"][0]  # any of the good images sleeps as an infra process
    d = pinnaced(config_text=f'[images]\nsandbox_image = "{pause}"\n', start=False)
    d.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (d.cni_conf_dir / "10-lo.conflist").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "lo-only", "plugins": [{"type": "loopback"}]})
    )
    d.start()
    yield d
    runtime, _ = d.clients()
    for pod in runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
    assert mounts_under([d.root, d.state]) == []


def test_layers_ending_early_pull_and_run(daemon: Pinnaced, layer_images, tmp_path) -> None:
    runtime, image = daemon.clients()
    name = f"ends-{uuid.uuid4().hex[:8]}"
    pod = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="e2e"),
        log_directory=str(tmp_path / "logs"),
    )
    for where in GOOD:
        ref = layer_images[where][0]
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    pod_id = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id
    for where in GOOD:
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=where),
            image=pb.ImageSpec(image=layer_images[where][0]),
            log_path=f"{where}.log",
        )
        cid = runtime.CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod),
            timeout=60,
        ).container_id
        runtime.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        reply = runtime.ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=["cat", "/ends/first", "/ends/last"]),
            timeout=60,
        )
        assert (reply.exit_code, reply.stdout) == (0, b"first\n" + LAST), where


@pytest.mark.parametrize("where", list(BAD))
def test_layers_cut_inside_a_member_are_refused(daemon: Pinnaced, layer_images, where) -> None:
    _, image = daemon.clients()
    ref, digest = layer_images[where]
    with pytest.raises(grpc.RpcError) as info:
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"layer {digest}: " in info.value.details()
    assert BAD[where] in info.value.details()
    assert image.ListImages(pb.ListImagesRequest()).images == []
