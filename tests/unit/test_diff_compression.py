"""Compression detection and streaming decompression (gzip multi-member, zstd multi-frame)."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from types import ModuleType

import pytest
import zstandard

from runtime import ocispec
from runtime.diff import Compression, decompressing_reader, detect
from runtime.diff.compression import INFLATE
from runtime.errors import InvalidArgument

GZIP = Compression.GZIP
# Every gzip test runs with the standard library's inflate and with the one pinnace uses.
inflaters = pytest.mark.parametrize(
    "inflate", sorted({zlib, INFLATE}, key=lambda m: m.__name__), ids=lambda m: m.__name__
)


class Trickle:
    """A source that returns at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int) -> None:
        self._buf = io.BytesIO(data)
        self._step = step

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, self._step) if n >= 0 else self._step)


def read_all(reader: object, n: int = 65536) -> bytes:
    out = []
    while chunk := reader.read(n):  # type: ignore[attr-defined]
        assert len(chunk) <= n
        out.append(chunk)
    return b"".join(out)


@pytest.mark.parametrize(
    ("media_type", "head", "expected"),
    [
        (ocispec.OCI_LAYER_GZIP, b"\x1f\x8b\x08", Compression.GZIP),
        (ocispec.DOCKER_LAYER_GZIP, b"\x1f\x8b\x08", Compression.GZIP),
        (ocispec.OCI_LAYER_ZSTD, b"\x28\xb5\x2f\xfd", Compression.ZSTD),
        (ocispec.OCI_LAYER, b"etc/", Compression.NONE),
        (ocispec.OCI_LAYER_GZIP, b"", Compression.GZIP),  # no head yet: trust the type
        (ocispec.DOCKER_LAYER_GZIP, b"\x28\xb5\x2f\xfd", Compression.ZSTD),  # mislabelled
        ("", b"\x1f\x8b", Compression.GZIP),
        ("application/octet-stream", b"\x28\xb5\x2f\xfd", Compression.ZSTD),
        ("application/octet-stream", b"ustar", Compression.NONE),
    ],
)
def test_detect(media_type: str, head: bytes, expected: Compression) -> None:
    assert detect(media_type, head) is expected


@inflaters
def test_gzip_multi_member_with_padding(inflate: ModuleType) -> None:
    parts = [os.urandom(300_000), b"a" * 2_000_000, b"", b"tail"]
    blob = b"".join(gzip.compress(p, compresslevel=1) for p in parts) + b"\0" * 1000
    for step in (1, 7, 4096, 1 << 20):
        reader = decompressing_reader(Trickle(blob, step), GZIP, inflate=inflate)
        assert read_all(reader, 5000 if step < 100 else 65536) == b"".join(parts)


@inflaters
def test_gzip_bounded_reads_of_highly_compressible_data(inflate: ModuleType) -> None:
    blob = gzip.compress(b"\0" * (50 << 20))
    reader = decompressing_reader(io.BytesIO(blob), GZIP, inflate=inflate)
    assert len(reader.read(1000)) <= 1000
    assert len(read_all(reader)) == (50 << 20) - 1000


@inflaters
def test_gzip_truncated_and_corrupt(inflate: ModuleType) -> None:
    blob = gzip.compress(os.urandom(100_000))
    with pytest.raises(InvalidArgument, match="truncated"):
        read_all(decompressing_reader(io.BytesIO(blob[:-20]), GZIP, inflate=inflate))
    bad = blob[:20] + bytes(b ^ 0xFF for b in blob[20:200]) + blob[200:]
    with pytest.raises(InvalidArgument):
        read_all(decompressing_reader(io.BytesIO(bad), GZIP, inflate=inflate))
    with pytest.raises(InvalidArgument):
        read_all(decompressing_reader(io.BytesIO(blob + b"garbage"), GZIP, inflate=inflate))


@inflaters
def test_gzip_read_all_at_once(inflate: ModuleType) -> None:
    blob = zlib.compress(b"x", wbits=31)  # a gzip member made by zlib itself
    blobs = io.BytesIO(gzip.compress(b"abc") + blob)
    reader = decompressing_reader(blobs, GZIP, inflate=inflate)
    assert reader.read() == b"abcx"


def test_zstd_multi_frame() -> None:
    cctx = zstandard.ZstdCompressor(level=1)
    parts = [os.urandom(200_000), b"z" * 3_000_000, b"end"]
    blob = b"".join(cctx.compress(p) for p in parts)
    for step in (3, 65536):
        reader = decompressing_reader(Trickle(blob, step), Compression.ZSTD)
        assert read_all(reader) == b"".join(parts)


def test_zstd_corrupt() -> None:
    blob = zstandard.ZstdCompressor().compress(os.urandom(10_000))
    bad = blob[:6] + b"\xff" * 40 + blob[46:]
    with pytest.raises(InvalidArgument):
        read_all(decompressing_reader(io.BytesIO(bad), Compression.ZSTD))


def test_none_passes_through() -> None:
    src = io.BytesIO(b"plain")
    assert decompressing_reader(src, Compression.NONE).read(100) == b"plain"
