"""OCI image-spec vocabulary shared by content, distribution, images and oci: descriptors,
platforms, media types, digests, media-type sniffing of manifest documents, and the parts of an
image config a runtime uses (:class:`ImageConfig`). Frozen dataclasses; JSON only at the edges
(``to_json``/``from_json``). It sits below all of them so that none imports another sideways.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runtime.errors import FailedPrecondition, InvalidArgument

# Media types we know. Docker's names are kept because registries still serve them.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_SCHEMA1, DOCKER_MANIFEST_SCHEMA1_SIGNED})

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256/sha512 digest, else raise InvalidArgument."""
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(
            f"invalid digest {digest!r}: expected 'sha256:' followed by 64 lowercase hex digits"
        )
    return digest


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform: what a manifest in an index was built for."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=str(data.get("variant", "") or ""),
            os_version=str(data.get("os.version", "") or ""),
            os_features=tuple(data.get("os.features", ()) or ()),
        )


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content: what it is (media type), which bytes (digest) and how many."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        if self.size < 0:
            raise InvalidArgument(f"descriptor {self.digest} has a negative size {self.size}")

    def __hash__(self) -> int:
        return hash((self.media_type, self.digest, self.size))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, default_media_type: str = "") -> Descriptor:
        try:
            platform = data.get("platform")
            return cls(
                media_type=str(data.get("mediaType") or default_media_type),
                digest=str(data["digest"]),
                size=int(data["size"]),
                annotations=dict(data.get("annotations") or {}),
                platform=Platform.from_json(platform) if platform else None,
                urls=tuple(data.get("urls") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed descriptor {dict(data)!r}: {exc}") from exc


# --- documents: digests, media-type sniffing, the image config's run defaults ---------------

# Content types a registry may use when it does not know what it stores; we then look inside.
GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})


_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config a runtime uses; ``raw`` keeps the whole document."""

    architecture: str
    os: str
    variant: str = ""
    user: str = ""
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    stop_signal: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    diff_ids: tuple[str, ...] = ()
    created: str = ""
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``data`` (sha256 or sha512)."""
    if algorithm not in ("sha256", "sha512"):
        raise InvalidArgument(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def schema1_error(ref: str = "") -> FailedPrecondition:
    """The error for a Docker schema 1 manifest, which pinnace does not pull."""
    image = f" (image {ref})" if ref else ""
    return FailedPrecondition(
        f"schema 1 manifests are not supported{image}; "
        "re-push it with a current docker/podman/skopeo"
    )


def sniff_media_type(data: bytes, declared: str = "", *, ref: str = "") -> str:
    """The media type of a manifest document: ``declared`` (a Content-Type, parameters allowed)
    when it is specific, else what the JSON says or looks like.

    Schema 1 raises FailedPrecondition."""
    declared = declared.split(";", 1)[0].strip().lower()
    if declared in SCHEMA1_TYPES:
        raise schema1_error(ref)
    doc = _load(data, "manifest", ref)
    inner = doc.get("mediaType")
    if doc.get("schemaVersion") == 1 or "fsLayers" in doc:
        raise schema1_error(ref)
    if isinstance(inner, str) and inner in SCHEMA1_TYPES:
        raise schema1_error(ref)
    if declared not in GENERIC_TYPES:
        known = INDEX_TYPES | MANIFEST_TYPES
        if isinstance(inner, str) and inner and inner in known and declared in known:
            if inner != declared:
                raise FailedPrecondition(
                    f"manifest{_of(ref)} declares media type {inner} but was served as {declared}"
                )
        return declared
    if isinstance(inner, str) and inner:
        return inner
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    raise FailedPrecondition(f"manifest{_of(ref)} is neither an image index nor a manifest")


def _of(ref: str) -> str:
    return f" of {ref}" if ref else ""


def _load(data: bytes, what: str, ref: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FailedPrecondition(f"{what}{_of(ref)} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FailedPrecondition(f"{what}{_of(ref)} is not a JSON object")
    return doc
