"""Parsing indexes, manifests and image configs."""

from __future__ import annotations

import hashlib
import json

import pytest

from runtime import ocispec
from runtime.errors import FailedPrecondition
from runtime.images.manifest import (
    Index,
    Manifest,
    chain_ids,
    check_layers_match,
    compute_digest,
    parse_any,
    parse_image_config,
    parse_index,
    parse_manifest,
    sniff_media_type,
)

DA, DB, DC = ("sha256:" + c * 64 for c in "abc")


def manifest_doc(
    media_type: str | None = ocispec.OCI_MANIFEST, layer_type: str = ocispec.OCI_LAYER_GZIP
) -> dict:
    doc: dict = {
        "schemaVersion": 2,
        "config": {"mediaType": ocispec.OCI_CONFIG, "digest": DA, "size": 10},
        "layers": [
            {"mediaType": layer_type, "digest": DB, "size": 100},
            {"mediaType": ocispec.OCI_LAYER_ZSTD, "digest": DC, "size": 200},
        ],
        "annotations": {"k": "v"},
    }
    if media_type:
        doc["mediaType"] = media_type
    return doc


def index_doc(media_type: str | None = ocispec.OCI_INDEX) -> dict:
    doc: dict = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": ocispec.OCI_MANIFEST,
                "digest": DA,
                "size": 5,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": ocispec.OCI_MANIFEST,
                "digest": DB,
                "size": 6,
                "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            },
        ],
    }
    if media_type:
        doc["mediaType"] = media_type
    return doc


def raw(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_parse_manifest() -> None:
    m = parse_manifest(raw(manifest_doc()))
    assert isinstance(m, Manifest)
    assert m.config.digest == DA and m.config.media_type == ocispec.OCI_CONFIG
    assert [layer.digest for layer in m.layers] == [DB, DC]
    assert m.layers[1].media_type == ocispec.OCI_LAYER_ZSTD
    assert dict(m.annotations) == {"k": "v"}


def test_parse_index() -> None:
    i = parse_index(raw(index_doc()))
    assert isinstance(i, Index)
    assert [d.digest for d in i.manifests] == [DA, DB]
    assert i.manifests[1].platform == ocispec.Platform("linux", "arm64", "v8")


@pytest.mark.parametrize(
    ("declared", "doc", "expected"),
    [
        (ocispec.OCI_MANIFEST, manifest_doc(), ocispec.OCI_MANIFEST),
        (
            ocispec.DOCKER_MANIFEST + "; charset=utf-8",
            manifest_doc(ocispec.DOCKER_MANIFEST),
            ocispec.DOCKER_MANIFEST,
        ),
        ("application/json", manifest_doc(ocispec.DOCKER_MANIFEST), ocispec.DOCKER_MANIFEST),
        ("", manifest_doc(None), ocispec.OCI_MANIFEST),
        ("text/plain", index_doc(None), ocispec.OCI_INDEX),
        (
            "application/octet-stream",
            index_doc(ocispec.DOCKER_MANIFEST_LIST),
            ocispec.DOCKER_MANIFEST_LIST,
        ),
        (ocispec.OCI_INDEX, index_doc(None), ocispec.OCI_INDEX),
    ],
)
def test_sniff_media_type(declared: str, doc: dict, expected: str) -> None:
    assert sniff_media_type(raw(doc), declared) == expected


def test_parse_any_dispatches() -> None:
    assert isinstance(parse_any("application/json", raw(index_doc())), Index)
    assert isinstance(
        parse_any(ocispec.DOCKER_MANIFEST, raw(manifest_doc(ocispec.DOCKER_MANIFEST))), Manifest
    )


def test_declared_type_conflicting_with_document() -> None:
    with pytest.raises(FailedPrecondition, match=r"declares media type .*index.* but was"):
        parse_any(ocispec.OCI_MANIFEST, raw(index_doc()))


SCHEMA1 = {"schemaVersion": 1, "name": "x", "tag": "t", "fsLayers": [], "history": []}


@pytest.mark.parametrize(
    "declared",
    [
        ocispec.DOCKER_MANIFEST_SCHEMA1_SIGNED,
        ocispec.DOCKER_MANIFEST_SCHEMA1,
        "application/json",
        "",
    ],
)
def test_schema1_is_refused_with_the_ref(declared: str) -> None:
    with pytest.raises(FailedPrecondition) as info:
        parse_any(declared, raw(SCHEMA1), ref="docker.io/library/old:1")
    assert str(info.value) == (
        "schema 1 manifests are not supported (image docker.io/library/old:1); "
        "re-push it with a current docker/podman/skopeo"
    )


def test_unknown_layer_type_is_named() -> None:
    with pytest.raises(FailedPrecondition, match=r"application/vnd\.example\.layer"):
        parse_manifest(raw(manifest_doc(layer_type="application/vnd.example.layer")))


def test_foreign_and_nondistributable_layers_are_accepted() -> None:
    for t in (
        ocispec.DOCKER_LAYER_FOREIGN_GZIP,
        ocispec.OCI_LAYER_NONDIST_GZIP,
        ocispec.DOCKER_LAYER_GZIP,
    ):
        assert parse_manifest(raw(manifest_doc(layer_type=t))).layers[0].media_type == t


def test_artifact_config_is_not_an_image() -> None:
    doc = manifest_doc()
    doc["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    with pytest.raises(FailedPrecondition, match="not a container image"):
        parse_manifest(raw(doc))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (raw({"schemaVersion": 2, "layers": []}), "needs a 'config' object"),
        (
            raw(
                {
                    **manifest_doc(),
                    "layers": [{"mediaType": ocispec.OCI_LAYER, "digest": "sha256:x", "size": 1}],
                }
            ),
            "layer 0",
        ),
        (raw({**manifest_doc(), "layers": [{"digest": DA, "size": 1}]}), "has no mediaType"),
    ],
)
def test_malformed_manifests(data: bytes, message: str) -> None:
    with pytest.raises(FailedPrecondition, match=message):
        parse_manifest(data)


CONFIG = {
    "architecture": "arm64",
    "os": "linux",
    "variant": "v8",
    "created": "2024-01-01T00:00:00Z",
    "config": {
        "User": "1000:1000",
        "Env": ["PATH=/bin", "A=b"],
        "Entrypoint": ["/init"],
        "Cmd": ["serve", "--x"],
        "WorkingDir": "/srv",
        "Labels": {"org": "pinnace"},
        "StopSignal": "SIGINT",
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}},
    },
    "rootfs": {"type": "layers", "diff_ids": [DB, DC]},
}


def test_parse_image_config() -> None:
    c = parse_image_config(raw(CONFIG))
    assert (c.architecture, c.os, c.variant) == ("arm64", "linux", "v8")
    assert c.user == "1000:1000"
    assert c.env == ("PATH=/bin", "A=b")
    assert c.entrypoint == ("/init",) and c.cmd == ("serve", "--x")
    assert c.working_dir == "/srv" and c.stop_signal == "SIGINT"
    assert dict(c.labels) == {"org": "pinnace"}
    assert c.exposed_ports == ("53/udp", "8080/tcp") and c.volumes == ("/data",)
    assert c.diff_ids == (DB, DC)
    assert c.created == "2024-01-01T00:00:00Z"
    assert c.raw["rootfs"]["type"] == "layers"


def test_minimal_config_has_empty_defaults() -> None:
    c = parse_image_config(
        raw({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    )
    assert c.env == () and c.cmd == () and c.user == "" and dict(c.labels) == {}


def test_config_with_bad_diff_id() -> None:
    with pytest.raises(FailedPrecondition, match="invalid digest"):
        parse_image_config(raw({"rootfs": {"diff_ids": ["sha256:nothex"]}}))


def test_layers_must_match_diff_ids() -> None:
    m = parse_manifest(raw(manifest_doc()))
    check_layers_match(m, parse_image_config(raw(CONFIG)))
    short = parse_image_config(raw({**CONFIG, "rootfs": {"type": "layers", "diff_ids": [DB]}}))
    with pytest.raises(FailedPrecondition, match="2 layers but the config lists 1 diff IDs"):
        check_layers_match(m, short, ref="x")


def test_chain_ids_follow_the_oci_formula() -> None:
    assert chain_ids([]) == []
    assert chain_ids([DA]) == [DA]
    second = "sha256:" + hashlib.sha256(f"{DA} {DB}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {DC}".encode()).hexdigest()
    assert chain_ids([DA, DB, DC]) == [DA, second, third]


def test_compute_digest() -> None:
    assert (
        compute_digest(b"")
        == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert compute_digest(b"x", "sha512").startswith("sha512:")
