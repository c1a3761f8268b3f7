"""Parsing image indexes, manifests and image configs (OCI and Docker schema 2). Pure: bytes in,
frozen dataclasses out, ``runtime.errors`` on anything we cannot use.

Terms: an *index* (OCI index / Docker manifest list) lists manifests per platform; a *manifest*
names one image's *config* blob and its *layers* in order; the *config* carries the run defaults
and the *diff IDs* (digests of the uncompressed layers), from which *chain IDs* name the stack of
layers up to each one: ``chain(1) = diff(1)``, ``chain(n) = sha256(chain(n-1) + " " + diff(n))``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from runtime import ocispec
from runtime.errors import FailedPrecondition, InvalidArgument
from runtime.ocispec import (  # re-exported: the image layer's callers use them from here
    ImageConfig,
    compute_digest,
    schema1_error,
    sniff_media_type,
)

LAYER_TYPES = frozenset(
    {
        ocispec.OCI_LAYER,
        ocispec.OCI_LAYER_GZIP,
        ocispec.OCI_LAYER_ZSTD,
        ocispec.OCI_LAYER_NONDIST,
        ocispec.OCI_LAYER_NONDIST_GZIP,
        ocispec.OCI_LAYER_NONDIST_ZSTD,
        ocispec.DOCKER_LAYER_GZIP,
        ocispec.DOCKER_LAYER_FOREIGN_GZIP,
        ocispec.DOCKER_LAYER_TAR,
    }
)
CONFIG_TYPES = frozenset({ocispec.OCI_CONFIG, ocispec.DOCKER_CONFIG})

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or Docker manifest list."""

    media_type: str
    manifests: tuple[ocispec.Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An OCI image manifest or Docker schema 2 manifest: a config and layers, base first."""

    media_type: str
    config: ocispec.Descriptor
    layers: tuple[ocispec.Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of each layer stack, base first (OCI image-spec ``config.md``)."""
    out: list[str] = []
    for diff_id in diff_ids:
        ocispec.validate_digest(diff_id)
        if not out:
            out.append(diff_id)
        else:
            out.append(compute_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def parse_any(media_type: str, data: bytes, *, ref: str = "") -> Index | Manifest:
    """Parse an index or a manifest; ``media_type`` may be a generic Content-Type."""
    kind = sniff_media_type(data, media_type, ref=ref)
    if kind in ocispec.INDEX_TYPES:
        return parse_index(data, media_type=kind, ref=ref)
    if kind in ocispec.MANIFEST_TYPES:
        return parse_manifest(data, media_type=kind, ref=ref)
    raise FailedPrecondition(f"unsupported manifest media type {kind}{_of(ref)}")


def parse_index(data: bytes, *, media_type: str = ocispec.OCI_INDEX, ref: str = "") -> Index:
    """Parse an OCI index or Docker manifest list."""
    doc = _load(data, "index", ref)
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise FailedPrecondition(f"index{_of(ref)} has no 'manifests' list")
    manifests = tuple(
        _descriptor(e, f"index{_of(ref)} entry {i}", default_type=ocispec.OCI_MANIFEST)
        for i, e in enumerate(entries)
    )
    return Index(media_type, manifests, _annotations(doc, ref))


def parse_manifest(
    data: bytes, *, media_type: str = ocispec.OCI_MANIFEST, ref: str = ""
) -> Manifest:
    """Parse an image manifest; every layer must have a media type we can unpack."""
    doc = _load(data, "manifest", ref)
    if doc.get("schemaVersion") == 1 or "fsLayers" in doc:
        raise schema1_error(ref)
    config_doc = doc.get("config")
    layer_docs = doc.get("layers")
    if not isinstance(config_doc, dict) or not isinstance(layer_docs, list):
        raise FailedPrecondition(f"manifest{_of(ref)} needs a 'config' object and a 'layers' list")
    config = _descriptor(config_doc, f"manifest{_of(ref)} config")
    if config.media_type not in CONFIG_TYPES:
        raise FailedPrecondition(
            f"manifest{_of(ref)} is not a container image: config media type {config.media_type!r}"
        )
    layers = tuple(
        _descriptor(d, f"manifest{_of(ref)} layer {i}") for i, d in enumerate(layer_docs)
    )
    for i, layer in enumerate(layers):
        if layer.media_type not in LAYER_TYPES:
            raise FailedPrecondition(
                f"manifest{_of(ref)} layer {i} ({layer.digest}) has unsupported media type "
                f"{layer.media_type!r}"
            )
    return Manifest(media_type, config, layers, _annotations(doc, ref))


def parse_image_config(data: bytes, *, ref: str = "") -> ImageConfig:
    """Parse an image config (OCI or Docker); diff IDs must be well-formed digests."""
    doc = _load(data, "image config", ref)
    run = doc.get("config") or {}
    rootfs = doc.get("rootfs") or {}
    if not isinstance(run, dict) or not isinstance(rootfs, dict):
        raise FailedPrecondition(f"image config{_of(ref)}: 'config' and 'rootfs' must be objects")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise FailedPrecondition(
            f"image config{_of(ref)}: rootfs.diff_ids must be a list of digests"
        )
    for d in diff_ids:
        try:
            ocispec.validate_digest(d)
        except InvalidArgument as exc:
            raise FailedPrecondition(f"image config{_of(ref)}: {exc}") from None
    try:
        return ImageConfig(
            architecture=str(doc.get("architecture") or ""),
            os=str(doc.get("os") or ""),
            variant=str(doc.get("variant") or ""),
            user=str(run.get("User") or ""),
            env=_strs(run.get("Env")),
            entrypoint=_strs(run.get("Entrypoint")),
            cmd=_strs(run.get("Cmd")),
            working_dir=str(run.get("WorkingDir") or ""),
            labels=MappingProxyType({str(k): str(v) for k, v in (run.get("Labels") or {}).items()}),
            stop_signal=str(run.get("StopSignal") or ""),
            exposed_ports=tuple(sorted(run.get("ExposedPorts") or {})),
            volumes=tuple(sorted(run.get("Volumes") or {})),
            diff_ids=tuple(diff_ids),
            created=str(doc.get("created") or ""),
            raw=MappingProxyType(doc),
        )
    except (AttributeError, TypeError) as exc:
        raise FailedPrecondition(f"image config{_of(ref)} is malformed: {exc}") from None


def check_layers_match(manifest: Manifest, config: ImageConfig, *, ref: str = "") -> None:
    """Raise FailedPrecondition unless the manifest has one layer per diff ID in the config."""
    if len(manifest.layers) != len(config.diff_ids):
        raise FailedPrecondition(
            f"image{_of(ref)} is inconsistent: the manifest has {len(manifest.layers)} layers "
            f"but the config lists {len(config.diff_ids)} diff IDs"
        )


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


def _descriptor(doc: Any, where: str, *, default_type: str = "") -> ocispec.Descriptor:
    if not isinstance(doc, dict):
        raise FailedPrecondition(f"{where} is not a descriptor object")
    try:
        desc = ocispec.Descriptor.from_json(doc, default_media_type=default_type)
    except InvalidArgument as exc:
        raise FailedPrecondition(f"{where}: {exc}") from None
    if not desc.media_type:
        raise FailedPrecondition(f"{where} ({desc.digest}) has no mediaType")
    return desc


def _annotations(doc: Mapping[str, Any], ref: str) -> Mapping[str, str]:
    value = doc.get("annotations") or {}
    if not isinstance(value, dict):
        raise FailedPrecondition(f"annotations{_of(ref)} must be an object")
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _strs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return tuple(str(v) for v in value)
