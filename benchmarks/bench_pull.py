"""Cold-pull throughput: a ~100 MB image of 5 incompressible gzip layers, pulled from a local
docker-registry by a real pinnaced through the CRI, several times, each from an empty store.

    .venv/bin/python -m benchmarks.bench_pull [--size-mb 100] [--layers 5] [--runs 5]
                                              [--concurrency 3] [--snapshotter overlay]

Prints one row per run and the median. Between runs the image is removed, which garbage-
collects its blobs and snapshots, so every run downloads and unpacks everything again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--snapshotter", default="overlay", choices=["overlay", "native"])
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / "pinnace-bench-cache"
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-") as tmp:
        base = Path(tmp)
        image = images.big_image(cache, total_bytes=args.size_mb * 1024 * 1024, layers=args.layers)
        compressed = sum(layer.blob.size for layer in image.layers)
        with Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/big", "v1", image)
            name = f"{registry.host}/bench/big:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            config = (
                "[images]\n"
                f"max_concurrent_downloads = {args.concurrency}\n"
                f'snapshotter = "{args.snapshotter}"\n'
            )
            (base / "d").mkdir()
            with Pinnaced(base / "d", registry_hosts_dir=hosts, config_text=config) as daemon:
                _, image_api = daemon.clients()
                print(
                    f"image: {len(image.layers)} layers, {compressed / 1e6:.1f} MB compressed; "
                    f"snapshotter {args.snapshotter}, {args.concurrency} concurrent downloads"
                )
                print(f"{'run':>4} {'seconds':>8} {'MB/s':>8}")
                seconds = []
                for run in range(1, args.runs + 1):
                    start = time.perf_counter()
                    image_api.PullImage(
                        pb.PullImageRequest(image=pb.ImageSpec(image=name)), timeout=600
                    )
                    elapsed = time.perf_counter() - start
                    seconds.append(elapsed)
                    print(f"{run:>4} {elapsed:>8.3f} {compressed / elapsed / 1e6:>8.1f}")
                    image_api.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=name)))
                median = statistics.median(seconds)
                print(
                    f"median {median:.3f} s, {compressed / median / 1e6:.1f} MB/s "
                    f"(best {compressed / min(seconds) / 1e6:.1f} MB/s)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
