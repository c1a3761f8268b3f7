"""The image service end to end: real docker-registry, real pinnaced, the CRI ImageService and
pinnace's own Images API, through the project's generated clients."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import grpc
import httpx
import pytest

from cri.api.pinnace.images.v1 import images_pb2 as ipb
from cri.api.pinnace.images.v1 import images_pb2_grpc as ipb_grpc
from cri.api.runtime.v1 import api_pb2 as pb
from tests.support import images
from tests.support.daemon import hosts_toml
from tests.support.defaults import TLS_USER, TOKEN_USER, tls_auth, token_auth
from tests.support.push import push_image


def _spec(name: str) -> pb.ImageSpec:
    return pb.ImageSpec(image=name)


def _pull(image_client, name: str, **auth: str) -> str:
    request = pb.PullImageRequest(image=_spec(name))
    if auth:
        request.auth.CopyFrom(pb.AuthConfig(**auth))
    return image_client.PullImage(request, timeout=120).image_ref


def _status(image_client, name: str, *, verbose: bool = False) -> pb.ImageStatusResponse:
    return image_client.ImageStatus(pb.ImageStatusRequest(image=_spec(name), verbose=verbose))


def _blobs(root: Path) -> set[str]:
    base = root / "content" / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in base.iterdir()} if base.is_dir() else set()


def test_pull_list_status_remove(pinnaced, registry, pushed_busybox, busybox_image) -> None:
    daemon = pinnaced()
    _, image = daemon.clients()
    ref = _pull(image, pushed_busybox)

    # image_ref is the image id, which is the config digest
    assert ref == busybox_image.config.digest
    listed = image.ListImages(pb.ListImagesRequest()).images
    assert [i.id for i in listed] == [ref]
    img = listed[0]
    assert list(img.repo_tags) == [pushed_busybox]
    name = pushed_busybox.rsplit(":", 1)[0]
    assert list(img.repo_digests) == [f"{name}@{busybox_image.digest}"]
    assert img.size == busybox_image.manifest.size + sum(b.size for b in busybox_image.blobs())

    # status by tag, by id, by short id, by digest reference; verbose carries the config
    for key in (pushed_busybox, ref, ref[7:19], f"{name}@{busybox_image.digest}"):
        assert _status(image, key).image.id == ref, key
    verbose = _status(image, pushed_busybox, verbose=True)
    info = json.loads(verbose.info["info"])
    assert (
        info["imageSpec"]["rootfs"]["diff_ids"] == busybox_image.config.json()["rootfs"]["diff_ids"]
    )

    # the filter of ListImages
    filtered = image.ListImages(pb.ListImagesRequest(filter=pb.ImageFilter(image=_spec(ref))))
    assert [i.id for i in filtered.images] == [ref]

    fs = image.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0]
    assert fs.used_bytes.value > busybox_image.layers[0].blob.size
    assert fs.inodes_used.value > 0
    assert fs.fs_id.mountpoint

    # remove by tag: gone, its blobs collected; removing again succeeds
    image.RemoveImage(pb.RemoveImageRequest(image=_spec(pushed_busybox)))
    assert _status(image, ref).HasField("image") is False
    assert image.ListImages(pb.ListImagesRequest()).images == []
    assert _blobs(daemon.root) == set()
    image.RemoveImage(pb.RemoveImageRequest(image=_spec(pushed_busybox)))


def test_absent_image_status_is_empty_not_an_error(pinnaced) -> None:
    _, image = pinnaced().clients()
    reply = _status(image, "example.invalid/nothing:here")
    assert not reply.HasField("image")


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("test/UPPERCASE:tag", "lowercase"),
        ("busybox:bad tag!", "tag"),
        ("busybox@sha256:1234", "digest"),
        ("", "empty"),
    ],
)
def test_malformed_references_are_invalid_argument(pinnaced, ref, fragment) -> None:
    _, image = pinnaced().clients()
    with pytest.raises(grpc.RpcError) as info:
        _pull(image, ref)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in info.value.details().lower()


def test_pull_variants_docker_zstd_uncompressed_fixtures(pinnaced, registry) -> None:
    daemon = pinnaced()
    _, image = daemon.clients()
    variants = {
        "docker-schema2": images.busybox_image(manifest_format="docker"),
        "zstd": images.busybox_image(compression="zstd", with_fixtures=True),
        "plain": images.busybox_image(compression="none"),
        "fixtures": images.busybox_image(with_fixtures=True),
    }
    for tag, img in variants.items():
        push_image(registry.url, "test/variants", tag, img)
        ref = _pull(image, f"{registry.host}/test/variants:{tag}")
        assert ref == img.config.digest, tag
    ids = {i.id for i in image.ListImages(pb.ListImagesRequest()).images}
    assert ids == {img.config.digest for img in variants.values()}


def test_multi_platform_index_selects_this_machine(pinnaced, registry) -> None:
    index = images.multiarch_busybox()
    push_image(registry.url, "test/multi", "v1", index)
    _, image = pinnaced().clients()
    ref = _pull(image, f"{registry.host}/test/multi:v1")
    assert ref == index.for_arch("amd64").config.digest
    status = _status(image, ref).image
    # the repo digest names what the tag resolved to: the index
    assert list(status.repo_digests) == [f"{registry.host}/test/multi@{index.digest}"]


def test_shared_layers_and_concurrent_pulls_fetch_each_blob_once(pinnaced, registry) -> None:
    img = images.busybox_image(with_fixtures=True)
    push_image(registry.url, "test/once-a", "v1", img)
    push_image(registry.url, "test/once-b", "v1", img)
    _, image = pinnaced().clients()
    results: list[str] = []
    errors: list[BaseException] = []

    def pull(name: str) -> None:
        try:
            results.append(_pull(image, name))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=pull, args=(f"{registry.host}/test/once-{x}:v1",))
        for x in ("a", "b", "a")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert results == [img.config.digest] * 3
    registry.barrier()
    for layer in img.layers:
        fetches = [e for e in registry.blob_fetches(layer.blob.digest) if "/test/once-" in e.path]
        assert len(fetches) == 1, layer.blob.digest


def test_tls_registry_with_basic_auth(pinnaced, tls_registry, test_ca, busybox_image) -> None:
    push_image(
        tls_registry.url, "test/private", "v1", busybox_image, auth=tls_auth(), ca=test_ca.ca_pem
    )
    daemon = pinnaced(start=False)
    hosts_toml(daemon.hosts_dir, tls_registry.host, plain_http=False, ca=test_ca.ca_pem)
    daemon.start()
    _, image = daemon.clients()
    name = f"{tls_registry.host}/test/private:v1"

    with pytest.raises(grpc.RpcError) as info:
        _pull(image, name)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.RpcError) as info:
        _pull(image, name, username=TLS_USER[0], password="wrong")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

    user, password = TLS_USER
    assert _pull(image, name, username=user, password=password) == busybox_image.config.digest


def test_token_registry_with_bearer_auth(pinnaced, token_registry, busybox_image) -> None:
    push_image(token_registry.url, "test/tokened", "v1", busybox_image, auth=token_auth())
    daemon = pinnaced(start=False)
    hosts_toml(daemon.hosts_dir, token_registry.host, plain_http=True)
    daemon.start()
    _, image = daemon.clients()
    name = f"{token_registry.host}/test/tokened:v1"

    with pytest.raises(grpc.RpcError) as info:
        _pull(image, name)
    assert info.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)

    import base64

    user, password = TOKEN_USER
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert _pull(image, name, auth=auth) == busybox_image.config.digest


def test_corrupt_blob_fails_naming_the_digest_and_leaves_nothing(pinnaced, registry) -> None:
    img = images.busybox_image(with_fixtures=True)
    push_image(registry.url, "test/corrupt", "v1", img)
    layer = img.layers[-1].blob
    registry.corrupt_blob(layer.digest)
    daemon = pinnaced()
    _, image = daemon.clients()
    with pytest.raises(grpc.RpcError) as info:
        _pull(image, f"{registry.host}/test/corrupt:v1")
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert layer.digest in info.value.details()
    assert image.ListImages(pb.ListImagesRequest()).images == []
    assert layer.digest not in _blobs(daemon.root)
    ingest = daemon.root / "content" / "ingest"
    assert not ingest.exists() or not any(
        (d / "expected").read_text() == layer.digest for d in ingest.iterdir()
    )


def test_unreachable_registry_is_registry_unavailable(pinnaced) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    daemon = pinnaced(start=False)
    hosts_toml(daemon.hosts_dir, f"127.0.0.1:{port}", plain_http=True)
    daemon.start()
    _, image = daemon.clients()
    with pytest.raises(grpc.RpcError) as info:
        _pull(image, f"127.0.0.1:{port}/nothing/here:v1")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details().startswith("RegistryUnavailable")
    assert f"127.0.0.1:{port}" in info.value.details()


def test_a_pull_by_digest_of_a_present_image_needs_no_registry(
    pinnaced, registry, pushed_busybox, busybox_image
) -> None:
    daemon = pinnaced()
    _, image = daemon.clients()
    ref = _pull(image, pushed_busybox)
    by_digest = f"{pushed_busybox.rsplit(':', 1)[0]}@{busybox_image.digest}"
    # From now on the registry's host name leads to a closed port.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    hosts_toml(
        daemon.hosts_dir, registry.host, plain_http=True, server=f"http://127.0.0.1:{closed}"
    )
    assert _pull(image, by_digest) == ref
    with pytest.raises(grpc.RpcError) as info:  # a tag must still be resolved by the registry
        _pull(image, pushed_busybox)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_repull_of_a_tag_resolves_it_and_picks_up_a_moved_tag(pinnaced, registry) -> None:
    first = images.busybox_image(config=images.ImageConfig(env=("WHICH=first",)))
    second = images.busybox_image(config=images.ImageConfig(env=("WHICH=second",)))
    push_image(registry.url, "test/moving", "v1", first)
    name = f"{registry.host}/test/moving:v1"
    daemon = pinnaced()
    _, image = daemon.clients()
    assert _pull(image, name) == first.config.digest
    registry.barrier()
    before = len(registry.access_log())
    # the tag still names what was pulled: one manifest HEAD, nothing else fetched
    assert _pull(image, name) == first.config.digest
    registry.barrier()
    since = [e for e in registry.access_log()[before:] if "barrier=" not in e.uri]
    assert [(e.method, e.path) for e in since] == [("HEAD", "/v2/test/moving/manifests/v1")]
    # the tag moves: the next pull follows it, and the tag leaves the first image
    push_image(registry.url, "test/moving", "v1", second)
    assert _pull(image, name) == second.config.digest
    assert list(_status(image, name).image.repo_tags) == [name]
    assert _status(image, name).image.id == second.config.digest
    assert list(_status(image, first.config.digest).image.repo_tags) == []


def test_sigkill_mid_pull_then_restart_and_pull_again(pinnaced, registry, tmp_path) -> None:
    big = images.big_image(tmp_path / "big", total_bytes=40 * 1024 * 1024, layers=4)
    push_image(registry.url, "test/big", "v1", big)
    daemon = pinnaced()
    name = f"{registry.host}/test/big:v1"
    # pull through the progress stream, and kill the daemon once a layer is part-downloaded
    stream = _images_stub(daemon).Pull(ipb.PullRequest(image=name), timeout=120)
    layers = {layer.blob.digest for layer in big.layers}
    with pytest.raises(grpc.RpcError) as info:
        for message in stream:
            if message.digest in layers and 0 < message.offset < message.total:
                daemon.kill()
    # the client sees the connection go (UNAVAILABLE, or CANCELLED mid-stream)
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)

    daemon.restart()
    _, image = daemon.clients()
    assert image.ListImages(pb.ListImagesRequest()).images == []
    assert _pull(image, name) == big.config.digest
    assert [i.id for i in image.ListImages(pb.ListImagesRequest()).images] == [big.config.digest]


def _images_stub(daemon) -> ipb_grpc.ImagesStub:
    channel = grpc.insecure_channel(f"unix://{daemon.socket}")
    return ipb_grpc.ImagesStub(channel)


def test_pull_with_progress_push_and_import(
    pinnaced, registry, pushed_busybox, busybox_image, tmp_path
) -> None:
    daemon = pinnaced()
    _, image = daemon.clients()
    stub = _images_stub(daemon)

    messages = list(stub.Pull(ipb.PullRequest(image=pushed_busybox), timeout=120))
    assert messages[-1].image_id == busybox_image.config.digest
    phases = {m.phase for m in messages}
    assert {"resolving", "downloading", "done"} <= phases

    target = f"{registry.host}/test/pushed:copy"
    done = list(stub.Push(ipb.PushRequest(image=pushed_busybox, target=target), timeout=120))
    assert done[-1].digest == busybox_image.digest
    reply = httpx.get(
        f"{registry.url}/v2/test/pushed/manifests/copy",
        headers={"Accept": images.OCI_MANIFEST},
        timeout=10,
    )
    assert reply.status_code == 200
    assert "sha256:" + hashlib.sha256(reply.content).hexdigest() == busybox_image.digest

    image.RemoveImage(pb.RemoveImageRequest(image=_spec(busybox_image.config.digest)))
    archive = images.write_oci_archive(busybox_image, tmp_path / "bb.tar", ref_name="7")
    imported = stub.Import(ipb.ImportRequest(path=str(archive), name="local.test/bb"))
    assert [i.id for i in imported.images] == [busybox_image.config.digest]
    assert list(imported.images[0].names) == ["local.test/bb:7"]
    assert _status(image, "local.test/bb:7").image.id == busybox_image.config.digest

    layout = images.write_oci_layout(
        images.multiarch_busybox(), tmp_path / "layout", ref_name="docker.io/library/multi:1"
    )
    imported = stub.Import(ipb.ImportRequest(path=str(layout)))
    # the index resolves to this machine's image, the same one imported above: one more name
    assert [i.id for i in imported.images] == [busybox_image.config.digest]
    assert "docker.io/library/multi:1" in imported.images[0].names

    with pytest.raises(grpc.RpcError) as info:
        stub.Import(ipb.ImportRequest(path=str(tmp_path / "missing.tar")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
