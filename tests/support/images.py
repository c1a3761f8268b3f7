"""OCI and Docker images built in Python for tests, independent of pinnace's own image code.

Terms:
  blob        bytes addressed by their sha256 digest, with a media type; kept in memory or, for big
              layers, in a file.
  image       a manifest (OCI or Docker schema2) + config + layers, for one platform.
  index       an OCI image index (or Docker manifest list) pointing at per-platform images.
  OCI layout  the on-disk form of the image-spec: ``oci-layout``, ``index.json``, ``blobs/sha256/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tests.support.layers import (
    BUSYBOX,
    Compression,
    busybox_base_layer,
    compress,
    fixture_layers,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = {
    "none": "application/vnd.docker.image.rootfs.diff.tar",
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

ManifestFormat = Literal["oci", "docker"]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Blob:
    """Content addressed by ``digest``: bytes in memory (``data``) or in a file (``path``)."""

    media_type: str
    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Blob:
        return cls(media_type=media_type, digest=sha256_digest(data), size=len(data), data=data)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        assert self.path is not None
        with self.path.open("rb") as f:
            while chunk := f.read(size):
                yield chunk

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def json(self) -> Any:
        return json.loads(self.read())


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer blob plus the digest of its uncompressed tar (the config's ``diff_id``)."""

    blob: Blob
    diff_id: str


@dataclass(frozen=True, slots=True)
class Image:
    """One platform's image: manifest, config and layers."""

    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]
    platform: dict[str, str]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        """Config and layers: what must be in a registry before the manifest is."""
        return [self.config, *(layer.blob for layer in self.layers)]


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """A multi-platform index and the images it lists."""

    index: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def manifest(self) -> Blob:
        return self.index

    def for_arch(self, architecture: str) -> Image:
        return next(i for i in self.images if i.platform["architecture"] == architecture)


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The runtime defaults of an image (the ``config`` object of the image config JSON)."""

    cmd: tuple[str, ...] | None = ("/bin/sh",)
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    user: str = ""
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Env": list(self.env)}
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.user:
            out["User"] = self.user
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        return out


class ImageBuilder:
    """Collect layers and a config, then :meth:`build` an :class:`Image`."""

    def __init__(
        self,
        *,
        architecture: str = "amd64",
        os: str = "linux",
        variant: str = "",
        config: ImageConfig | None = None,
    ) -> None:
        self.platform = {"architecture": architecture, "os": os}
        if variant:
            self.platform["variant"] = variant
        self.config = config or ImageConfig()
        self._layers: list[tuple[bytes, Compression]] = []
        self._prebuilt: list[Layer] = []

    def add_layer(self, tar: bytes, *, compression: Compression = "gzip") -> ImageBuilder:
        """Append a layer from its uncompressed tar bytes."""
        if self._prebuilt:
            raise ValueError("add tar layers before prebuilt ones")
        self._layers.append((tar, compression))
        return self

    def add_prebuilt_layer(self, layer: Layer) -> ImageBuilder:
        """Append a layer already compressed (e.g. a cached big layer on disk)."""
        self._prebuilt.append(layer)
        return self

    def build(self, *, manifest_format: ManifestFormat = "oci") -> Image:
        docker = manifest_format == "docker"
        layers: list[Layer] = []
        for tar, compression in self._layers:
            table = DOCKER_LAYER if docker else OCI_LAYER
            if compression not in table:
                raise ValueError(f"{manifest_format} manifests have no {compression} layer type")
            blob = Blob.of(table[compression], compress(tar, compression))
            layers.append(Layer(blob=blob, diff_id=sha256_digest(tar)))
        for layer in self._prebuilt:
            media = (DOCKER_LAYER if docker else OCI_LAYER)["gzip"]
            layers.append(Layer(blob=replace(layer.blob, media_type=media), diff_id=layer.diff_id))
        config_json = {
            **self.platform,
            "created": "2023-11-14T22:13:20Z",
            "config": self.config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [
                {"created": "2023-11-14T22:13:20Z", "created_by": "pinnace tests"} for _ in layers
            ],
        }
        config = Blob.of(DOCKER_CONFIG if docker else OCI_CONFIG, canonical_json(config_json))
        manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        manifest_json = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(),
            "layers": [layer.blob.descriptor() for layer in layers],
        }
        manifest = Blob.of(manifest_type, canonical_json(manifest_json))
        return Image(
            manifest=manifest, config=config, layers=tuple(layers), platform=dict(self.platform)
        )


def build_index(images: Sequence[Image], *, manifest_format: ManifestFormat = "oci") -> ImageIndex:
    """An index (or Docker manifest list) over ``images``, each entry carrying its platform."""
    media = DOCKER_LIST if manifest_format == "docker" else OCI_INDEX
    index_json = {
        "schemaVersion": 2,
        "mediaType": media,
        "manifests": [i.manifest.descriptor(platform=i.platform) for i in images],
    }
    return ImageIndex(index=Blob.of(media, canonical_json(index_json)), images=tuple(images))


# -- ready-made images ----------------------------------------------------------------------
def _busybox_bytes() -> bytes:
    return Path(BUSYBOX).read_bytes()


def busybox_image(
    *,
    architecture: str = "amd64",
    variant: str = "",
    manifest_format: ManifestFormat = "oci",
    compression: Compression = "gzip",
    config: ImageConfig | None = None,
    with_fixtures: bool = False,
    extra_layers: Sequence[bytes] = (),
) -> Image:
    """Debian's static busybox as a one-layer image (plus the :mod:`layers` fixture layers when
    ``with_fixtures``, then ``extra_layers``). ``/etc/image-arch`` holds ``architecture``."""
    builder = ImageBuilder(architecture=architecture, variant=variant, config=config)
    builder.add_layer(
        busybox_base_layer(busybox=_busybox_bytes(), arch_marker=architecture),
        compression=compression,
    )
    if with_fixtures:
        for tar in fixture_layers():
            builder.add_layer(tar, compression=compression)
    for tar in extra_layers:
        builder.add_layer(tar, compression=compression)
    return builder.build(manifest_format=manifest_format)


def multiarch_busybox(
    *, manifest_format: ManifestFormat = "oci", config: ImageConfig | None = None
) -> ImageIndex:
    """amd64 + arm64/v8 busybox images behind one index. Both carry the host's busybox bytes;
    only ``/etc/image-arch`` (``amd64`` / ``arm64``) tells them apart."""
    images = [
        busybox_image(architecture="amd64", manifest_format=manifest_format, config=config),
        busybox_image(
            architecture="arm64", variant="v8", manifest_format=manifest_format, config=config
        ),
    ]
    return build_index(images, manifest_format=manifest_format)


def big_image(
    cache_dir: Path,
    *,
    total_bytes: int = 100 * 1024 * 1024,
    layers: int = 5,
    seed: int = 0,
    manifest_format: ManifestFormat = "oci",
) -> Image:
    """A busybox base plus ``layers`` gzip layers of incompressible data, ``total_bytes`` in all.

    Layer blobs are written once under ``cache_dir/big-<params>/`` and reused on later runs (the
    data comes from a seeded generator, so it is the same every time).
    """
    import random

    key = f"big-{total_bytes}-{layers}-{seed}"
    directory = cache_dir / key
    directory.mkdir(parents=True, exist_ok=True)
    per_layer = total_bytes // layers
    prebuilt: list[Layer] = []
    for n in range(layers):
        meta_path = directory / f"layer{n}.json"
        blob_path = directory / f"layer{n}.tar.gz"
        if not meta_path.exists():
            rng = random.Random(f"{seed}-{n}")
            tar = _big_layer_tar(rng.randbytes(per_layer), name=f"/data/blob{n}.bin")
            import gzip

            compressed = gzip.compress(tar, compresslevel=1, mtime=0)
            tmp = blob_path.with_suffix(".tmp")
            tmp.write_bytes(compressed)
            os.replace(tmp, blob_path)
            meta = {"digest": sha256_digest(compressed), "diff_id": sha256_digest(tar)}
            meta_path.write_text(json.dumps({**meta, "size": len(compressed)}))
        meta = json.loads(meta_path.read_text())
        blob = Blob(
            media_type=OCI_LAYER["gzip"], digest=meta["digest"], size=meta["size"], path=blob_path
        )
        prebuilt.append(Layer(blob=blob, diff_id=meta["diff_id"]))
    builder = ImageBuilder()
    builder.add_layer(busybox_base_layer(busybox=_busybox_bytes(), arch_marker="amd64"))
    for layer in prebuilt:
        builder.add_prebuilt_layer(layer)
    return builder.build(manifest_format=manifest_format)


def _big_layer_tar(payload: bytes, *, name: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data")
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(info)
        info = tarfile.TarInfo(name.lstrip("/"))
        info.size, info.mode, info.mtime = len(payload), 0o644, 0
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


# -- OCI layout ------------------------------------------------------------------------------
def _all_blobs(image: Image | ImageIndex) -> list[Blob]:
    if isinstance(image, ImageIndex):
        out = [image.index]
        for child in image.images:
            out += [child.manifest, *child.blobs()]
        return out
    return [image.manifest, *image.blobs()]


def write_oci_layout(
    image: Image | ImageIndex, directory: Path, *, ref_name: str = "latest"
) -> Path:
    """Write ``image`` as an OCI image layout in ``directory``; ``index.json`` names it
    ``ref_name`` with the ``org.opencontainers.image.ref.name`` annotation."""
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    for blob in _all_blobs(image):
        target = blobs_dir / blob.digest.split(":", 1)[1]
        if target.exists():
            continue
        if blob.path is not None:
            shutil.copyfile(blob.path, target)
        else:
            target.write_bytes(blob.read())
    top = image.manifest
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [top.descriptor(annotations={REF_NAME: ref_name})],
    }
    (directory / "index.json").write_text(json.dumps(index, indent=2))
    return directory


def write_oci_archive(image: Image | ImageIndex, path: Path, *, ref_name: str = "latest") -> Path:
    """A tar of the OCI layout of ``image`` (what ``skopeo copy oci-archive:`` reads)."""
    with tempfile.TemporaryDirectory(prefix="pinnace-oci-") as tmp:
        layout = write_oci_layout(image, Path(tmp), ref_name=ref_name)
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for entry in sorted(layout.rglob("*")):
                tar.add(entry, arcname=str(entry.relative_to(layout)), recursive=False)
    return path
