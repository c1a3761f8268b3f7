"""Layer apply throughput: gzip-decompress + hash + apply of a ~100 MB layer.

The layer (random, incompressible data in a few files, gzip level 1) is built in memory. An
asyncio producer feeds it in 64 KiB chunks (what an HTTP client yields) into a ByteFeed; a
consumer thread hashes the compressed bytes (the content digest), decompresses, hashes the tar
(the diffID) and applies it into the layer directory of a fresh overlay snapshot. With
``--store`` the compressed bytes are also written to a LocalStore ingest and committed, as a pull
does. Prints MB/s of uncompressed layer data.

    cd /work/main && .venv/bin/python -m benchmarks.bench_apply [--size-mb 100] [--runs 3] [--store]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import os
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

from runtime.content import LocalStore
from runtime.diff import ByteFeed, Compression, HashingReader, apply_layer, decompressing_reader
from runtime.snapshots import OverlaySnapshotter

CHUNK = 64 * 1024


def make_layer(size_mb: int, files: int = 4) -> tuple[bytes, bytes]:
    buf = io.BytesIO()
    per_file = size_mb * (1 << 20) // files
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            data = os.urandom(per_file)
            info = tarfile.TarInfo(f"data/file{i}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, compresslevel=1)


class Tee:
    """Reads the feed, hashing (and optionally storing) the compressed bytes on the way."""

    def __init__(self, feed: ByteFeed, writer: object | None) -> None:
        self._feed = feed
        self._hasher = hashlib.sha256()
        self._writer = writer

    def read(self, n: int = -1) -> bytes:
        data = self._feed.read(n)
        if data:
            self._hasher.update(data)
            if self._writer is not None:
                self._writer.write(data)  # type: ignore[attr-defined]
        return data


async def one_run(blob: bytes, diff_id: str, root: Path, *, store: bool) -> float:
    sn = OverlaySnapshotter(root / "sn")
    content = LocalStore(root / "content")
    try:
        sn.prepare("bench")
        target = sn.layer_dir("bench")
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        feed = ByteFeed()

        def consume() -> str:
            writer = content.writer("bench", expected_digest=digest) if store else None
            tee = Tee(feed, writer)
            hashed = HashingReader(decompressing_reader(tee, Compression.GZIP))
            apply_layer(hashed, target, overlay_whiteouts=True)
            while tee.read(1 << 20):
                pass
            if writer is not None:
                writer.commit()  # type: ignore[attr-defined]
            return hashed.digest()

        start = time.perf_counter()
        consumer = asyncio.create_task(asyncio.to_thread(consume))
        view = memoryview(blob)
        for i in range(0, len(blob), CHUNK):
            await feed.afeed(bytes(view[i : i + CHUNK]))
        feed.close()
        got = await consumer
        elapsed = time.perf_counter() - start
        assert got == diff_id, (got, diff_id)
        return elapsed
    finally:
        sn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", action="store_true", help="also ingest into a LocalStore")
    args = parser.parse_args()
    raw, blob = make_layer(args.size_mb)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    mb = len(raw) / 1e6
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
            times.append(await one_run(blob, diff_id, Path(tmp), store=args.store))
    print(f"layer: {mb:.1f} MB uncompressed, {len(blob) / 1e6:.1f} MB gzip-1, {args.runs} runs")
    print(f"{'':8}{'seconds':>10}{'MB/s':>10}")
    print(f"{'best':8}{min(times):>10.3f}{mb / min(times):>10.1f}")
    print(f"{'median':8}{statistics.median(times):>10.3f}{mb / statistics.median(times):>10.1f}")


if __name__ == "__main__":
    asyncio.run(main())
