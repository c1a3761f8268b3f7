"""The harness proves itself against the real docker-registry, without pinnace's own code."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import tarfile
import tomllib
from pathlib import Path

import httpx
import pytest
import zstandard

from tests.support import images
from tests.support.daemon import (
    DaemonError,
    Pinnaced,
    clean_leftovers,
    hosts_toml,
    mounts_under,
    processes_mentioning,
)
from tests.support.defaults import BUSYBOX_REPO, BUSYBOX_TAG, TOKEN_USER, tls_auth, token_auth
from tests.support.images import Image, ImageIndex
from tests.support.layers import FIXTURES
from tests.support.push import parse_challenge, push_image
from tests.support.registry import Registry
from tests.support.token_issuer import TokenIssuer

ACCEPT = ", ".join(
    [images.OCI_MANIFEST, images.OCI_INDEX, images.DOCKER_MANIFEST, images.DOCKER_LIST]
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fetch_and_verify(
    client: httpx.Client,
    repo: str,
    reference: str,
    image: Image | ImageIndex,
    *,
    auth: httpx.Auth | None = None,
) -> None:
    """GET the manifest and every blob of ``image``; each must hash to its digest."""
    use_auth = auth if auth is not None else httpx.USE_CLIENT_DEFAULT
    accept = {"Accept": ACCEPT}
    response = client.get(f"/v2/{repo}/manifests/{reference}", headers=accept, auth=use_auth)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == image.manifest.media_type
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert sha256(response.content) == image.digest
    children = image.images if isinstance(image, ImageIndex) else (image,)
    for child in children:
        manifest = client.get(f"/v2/{repo}/manifests/{child.digest}", headers=accept, auth=use_auth)
        assert sha256(manifest.content) == child.digest
        for blob in child.blobs():
            got = client.get(f"/v2/{repo}/blobs/{blob.digest}", auth=use_auth)
            assert got.status_code == 200
            assert sha256(got.content) == blob.digest
            assert len(got.content) == blob.size


# -- registries ---------------------------------------------------------------------------
def test_plain_registry_serves_pushed_busybox(
    registry: Registry, pushed_busybox: str, busybox_image: Image
) -> None:
    assert pushed_busybox == f"{registry.host}/test/busybox:1.35"
    with registry.client() as client:
        fetch_and_verify(client, BUSYBOX_REPO, BUSYBOX_TAG, busybox_image)


@pytest.mark.parametrize(
    ("manifest_format", "compression"), [("docker", "gzip"), ("oci", "zstd"), ("oci", "none")]
)
def test_manifest_and_compression_variants(
    registry: Registry, manifest_format: images.ManifestFormat, compression: str
) -> None:
    image = images.busybox_image(manifest_format=manifest_format, compression=compression)  # type: ignore[arg-type]
    repo = f"test/variant-{manifest_format}-{compression}"
    push_image(registry.url, repo, "v1", image)
    with registry.client() as client:
        fetch_and_verify(client, repo, "v1", image)
        layer = client.get(f"/v2/{repo}/blobs/{image.layers[0].blob.digest}").content
    tar = {
        "gzip": gzip.decompress,
        "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b),
        "none": lambda b: b,
    }[compression](layer)
    assert sha256(tar) == image.layers[0].diff_id


def test_multiplatform_index(registry: Registry) -> None:
    index = images.multiarch_busybox()
    push_image(registry.url, "test/multi", "latest", index)
    with registry.client() as client:
        fetch_and_verify(client, "test/multi", "latest", index)
        body = client.get("/v2/test/multi/manifests/latest", headers={"Accept": ACCEPT}).json()
    platforms = {
        (m["platform"]["architecture"], m["platform"].get("variant", "")) for m in body["manifests"]
    }
    assert platforms == {("amd64", ""), ("arm64", "v8")}
    markers = {}
    for image in index.images:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(image.layers[0].blob.read()))) as tar:
            member = tar.extractfile("etc/image-arch")
            assert member is not None
            markers[image.platform["architecture"]] = member.read().decode().strip()
        assert image.config.json()["architecture"] == image.platform["architecture"]
    assert markers == {"amd64": "amd64", "arm64": "arm64"}


def test_tls_registry_requires_ca_and_basic_auth(
    tls_registry: Registry, busybox_image: Image
) -> None:
    assert tls_registry.ca is not None
    push_image(
        tls_registry.url,
        "test/busybox",
        "1.35",
        busybox_image,
        auth=tls_auth(),
        ca=tls_registry.ca.ca_pem,
    )
    with pytest.raises(httpx.ConnectError):  # the system trust store does not know our CA
        httpx.get(f"{tls_registry.url}/v2/")
    with tls_registry.client() as client:
        anonymous = client.get("/v2/")
        assert anonymous.status_code == 401
        assert parse_challenge(anonymous.headers["WWW-Authenticate"])[0] == "basic"
        wrong = client.get("/v2/", auth=("alice", "wrong"))
        assert wrong.status_code == 401
        fetch_and_verify(client, "test/busybox", "1.35", busybox_image, auth=tls_auth())


def test_token_registry_challenges_and_accepts_issued_tokens(
    token_registry: Registry, token_issuer: TokenIssuer, busybox_image: Image
) -> None:
    push_image(token_registry.url, "test/busybox", "1.35", busybox_image, auth=token_auth())
    manifest_path = "/v2/test/busybox/manifests/1.35"
    with token_registry.client() as client:
        anonymous = client.get(manifest_path, headers={"Accept": ACCEPT})
        assert anonymous.status_code == 401
        scheme, params = parse_challenge(anonymous.headers["WWW-Authenticate"])
        assert scheme == "bearer"
        assert params["realm"] == token_issuer.realm
        assert params["service"] == token_issuer.service
        assert params["scope"] == "repository:test/busybox:pull"

        query = {"service": params["service"], "scope": params["scope"]}
        refused = httpx.get(params["realm"], params=query, auth=("bob", "wrong"))
        assert refused.status_code == 401
        issued = httpx.get(params["realm"], params=query, auth=TOKEN_USER)
        assert issued.status_code == 200
        body = issued.json()
        assert body["token"] == body["access_token"]
        assert body["expires_in"] > 0

        bearer = {"Authorization": f"Bearer {body['token']}", "Accept": ACCEPT}
        accepted = client.get(manifest_path, headers=bearer)
        assert accepted.status_code == 200
        assert sha256(accepted.content) == busybox_image.digest
        blob = busybox_image.layers[0].blob
        got = client.get(f"/v2/test/busybox/blobs/{blob.digest}", headers=bearer)
        assert sha256(got.content) == blob.digest

        # The token is scoped: another repository needs another token.
        other = client.get("/v2/test/other/manifests/1.35", headers=bearer)
        assert other.status_code == 401
        # And the registry checks the audience, so a token for another service is refused.
        forged = token_issuer.issue_token(
            [("repository", "test/busybox", ("pull",))], audience="someone-else"
        )
        wrong_aud = client.get(manifest_path, headers={"Authorization": f"Bearer {forged}"})
        assert wrong_aud.status_code == 401
    assert any(r.username == "bob" and r.status == 200 for r in token_issuer.requests)


def test_token_issuer_password_grant(token_issuer: TokenIssuer) -> None:
    form = {
        "grant_type": "password",
        "username": TOKEN_USER[0],
        "password": TOKEN_USER[1],
        "service": token_issuer.service,
        "scope": "repository:test/busybox:pull",
    }
    response = httpx.post(token_issuer.realm, data=form)
    assert response.status_code == 200
    assert response.json()["access_token"].count(".") == 2
    assert httpx.post(token_issuer.realm, data={**form, "password": "x"}).status_code == 401


# -- faults and observation -----------------------------------------------------------------
def test_corrupt_blob_is_served_with_wrong_digest(tmp_path: Path) -> None:
    image = images.busybox_image()
    with Registry.plain(parent_dir=tmp_path) as reg:
        push_image(reg.url, "test/corrupt", "v1", image)
        blob = image.layers[0].blob
        served = reg.corrupt_blob(blob.digest)
        with reg.client() as client:
            got = client.get(f"/v2/test/corrupt/blobs/{blob.digest}")
        assert got.status_code == 200
        assert got.content == served
        assert len(got.content) == blob.size
        assert sha256(got.content) != blob.digest
        workdir = reg.workdir
    assert not workdir.exists()  # stop() removed the storage


def test_access_log_counts_blob_fetches(
    registry: Registry, busybox_image: Image, pushed_busybox: str
) -> None:
    config = busybox_image.config
    registry.barrier()
    before = len(registry.blob_fetches(config.digest))
    with registry.client() as client:
        for _ in range(2):
            assert client.get(f"/v2/{BUSYBOX_REPO}/blobs/{config.digest}").status_code == 200
    registry.barrier()
    fetches = registry.blob_fetches(config.digest)
    assert len(fetches) - before == 2
    assert fetches[-1].size == config.size


# -- images -----------------------------------------------------------------------------------
def verify_oci_layout(directory: Path) -> list[str]:
    """Walk index.json → manifests → config and layers; return the digests of every blob seen."""
    assert json.loads((directory / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"

    def blob(descriptor: dict[str, object]) -> bytes:
        digest = str(descriptor["digest"])
        data = (directory / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
        assert sha256(data) == digest
        assert len(data) == descriptor["size"]
        return data

    seen = []
    index = json.loads((directory / "index.json").read_text())
    pending = list(index["manifests"])
    while pending:
        descriptor = pending.pop()
        seen.append(descriptor["digest"])
        document = json.loads(blob(descriptor))
        if descriptor["mediaType"] in (images.OCI_INDEX, images.DOCKER_LIST):
            pending += document["manifests"]
            continue
        config = json.loads(blob(document["config"]))
        seen.append(document["config"]["digest"])
        assert len(config["rootfs"]["diff_ids"]) == len(document["layers"])
        for layer, diff_id in zip(document["layers"], config["rootfs"]["diff_ids"], strict=True):
            data = blob(layer)
            seen.append(layer["digest"])
            assert sha256(gzip.decompress(data)) == diff_id
    return seen


def test_oci_layout_and_archive(tmp_path: Path) -> None:
    index = images.multiarch_busybox()
    layout = images.write_oci_layout(index, tmp_path / "layout", ref_name="1.35")
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    assert top["annotations"][images.REF_NAME] == "1.35"
    assert top["digest"] == index.digest
    seen = verify_oci_layout(layout)
    assert set(seen) >= {index.digest, *(i.digest for i in index.images)}

    archive = images.write_oci_archive(images.busybox_image(), tmp_path / "image.tar")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="tar")
    assert len(verify_oci_layout(tmp_path / "unpacked")) == 3  # manifest, config, one layer


def test_fixture_layers_have_the_special_entries() -> None:
    image = images.busybox_image(with_fixtures=True)
    assert len(image.layers) == 3
    for layer in image.layers:
        assert sha256(gzip.decompress(layer.blob.read())) == layer.diff_id
    assert image.config.json()["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.layers]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(image.layers[0].blob.read()))) as base:
        members = {m.name: m for m in base.getmembers()}
        assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
        assert members["tmp"].mode == 0o1777
        passwd = base.extractfile("etc/passwd")
        assert passwd is not None and b"app:x:1000:1000" in passwd.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(image.layers[2].blob.read()))) as upper:
        members = {"/" + m.name: m for m in upper.getmembers()}
    assert "/fixtures/.wh.remove-me" in members
    assert "/fixtures/opaque/.wh..wh..opq" in members
    assert members[FIXTURES.hardlink].islnk()
    assert members[FIXTURES.symlink].linkname == FIXTURES.symlink_target
    device = members[FIXTURES.device]
    assert device.ischr() and (device.devmajor, device.devminor) == (1, 3)
    assert members[FIXTURES.setuid].mode == 0o4755
    xattr = members[FIXTURES.xattr_file].pax_headers
    assert xattr[f"SCHILY.xattr.{FIXTURES.xattr_name}"] == FIXTURES.xattr_value
    assert (members[FIXTURES.owned].uid, members[FIXTURES.owned].gid) == (1000, 1000)


def test_image_config_is_settable() -> None:
    config = images.ImageConfig(
        cmd=("echo", "hi"), entrypoint=("/bin/sh", "-c"), env=("A=1",), user="1000:1000",
        working_dir="/tmp", labels={"k": "v"},
    )  # fmt: skip
    body = images.busybox_image(config=config).config.json()["config"]
    assert body == {
        "Cmd": ["echo", "hi"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Env": ["A=1"],
        "User": "1000:1000",
        "WorkingDir": "/tmp",
        "Labels": {"k": "v"},
    }


def test_big_image_is_cached_and_pushable(tmp_path: Path, registry: Registry) -> None:
    first = images.big_image(tmp_path, total_bytes=2 * 1024 * 1024, layers=2)
    blob_files = sorted((tmp_path).rglob("*.tar.gz"))
    stamps = [p.stat().st_mtime_ns for p in blob_files]
    second = images.big_image(tmp_path, total_bytes=2 * 1024 * 1024, layers=2)
    assert second.digest == first.digest
    assert [p.stat().st_mtime_ns for p in blob_files] == stamps  # not regenerated
    assert len(first.layers) == 3
    # Incompressible: gzip cannot shrink random data.
    assert all(layer.blob.size > 1024 * 1024 for layer in first.layers[1:])
    push_image(registry.url, "test/big", "v1", first)
    with registry.client() as client:
        fetch_and_verify(client, "test/big", "v1", first)


# -- daemon helpers -------------------------------------------------------------------------
def test_hosts_toml(tmp_path: Path, tls_registry: Registry) -> None:
    assert tls_registry.ca is not None
    path = hosts_toml(tmp_path, tls_registry.host, plain_http=False, ca=tls_registry.ca.ca_pem)
    assert path == tmp_path / tls_registry.host / "hosts.toml"
    parsed = tomllib.loads(path.read_text())
    assert parsed["server"] == tls_registry.url
    # the server's settings are top-level; no [host] table repeats the server
    assert parsed["ca"] == str(tls_registry.ca.ca_pem)
    assert parsed["capabilities"] == ["pull", "resolve", "push"]
    assert "host" not in parsed
    mirrored = tomllib.loads(
        hosts_toml(
            tmp_path, "mirrored.test:5000", plain_http=True, mirrors=["http://127.0.0.1:5001"]
        ).read_text()
    )
    assert list(mirrored["host"]) == ["http://127.0.0.1:5001"]
    plain = tomllib.loads(hosts_toml(tmp_path, "127.0.0.1:5000", plain_http=True).read_text())
    assert plain["server"] == "http://127.0.0.1:5000"


def test_clean_leftovers_kills_processes_and_unmounts(tmp_path: Path) -> None:
    marker_dir = tmp_path / "state"
    (marker_dir / "mnt").mkdir(parents=True)
    # A process tree naming our dir (like conmon) with a child that does not (like a container).
    parent = subprocess.Popen(
        ["/bin/busybox", "sh", "-c", f"sleep 600 & echo forked; wait # {marker_dir}"],
        stdout=subprocess.PIPE,
    )
    assert parent.stdout is not None
    assert parent.stdout.readline() == b"forked\n"  # the child exists from here on
    subprocess.run(["mount", "-t", "tmpfs", "leftover", str(marker_dir / "mnt")], check=True)
    try:
        assert mounts_under([marker_dir]) == [str(marker_dir / "mnt")]
        tree = processes_mentioning([str(marker_dir)])
        assert parent.pid in tree and len(tree) == 2  # the shell and its sleep
        found = clean_leftovers([marker_dir])
        assert len(found.processes) == 2
        assert found.mounts == [str(marker_dir / "mnt")]
        assert parent.wait(10) == -9
        assert processes_mentioning([str(marker_dir)]) == {}
        assert mounts_under([marker_dir]) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        subprocess.run(["umount", str(marker_dir / "mnt")], capture_output=True)


def test_pinnaced_start_failure_reports_log(tmp_path: Path) -> None:
    daemon = Pinnaced(tmp_path, extra_args=("--no-such-flag-for-pinnaced",))
    try:
        with pytest.raises(DaemonError, match="exited with"):
            daemon.start(timeout=60)
        assert daemon.argv()[1:3] == ["-m", "cri.daemon"]
        assert "--no-such-flag-for-pinnaced" in daemon.log_path.read_text()
    finally:
        daemon.close()
    assert not daemon.short_dir.exists()


@pytest.mark.skipif(
    importlib.util.find_spec("cri.daemon") is None, reason="cri.daemon not written yet"
)
def test_pinnaced_answers_version(pinnaced, pushed_busybox: str) -> None:  # type: ignore[no-untyped-def]
    from cri.api.runtime.v1 import api_pb2

    daemon = pinnaced()
    assert daemon.running
    version = daemon.runtime.Version(api_pb2.VersionRequest(version="v1"), timeout=10)
    assert version.runtime_api_version.startswith("v1")
    assert daemon.stop() == 0
    assert os.path.exists(daemon.log_path)
