"""Cold-pull throughput: a ~100 MB image of 5 incompressible gzip layers, pulled from a local
docker-registry by a real pinnaced through the CRI, several times, each from an empty store.

    .venv/bin/python -m benchmarks.bench_pull [--size-mb 100] [--layers 5] [--runs 5]
                                              [--concurrency 3] [--snapshotter overlay]
                                              [--baseline DIR] [--warm 10]

Prints one row per run and the medians: MB/s (wall), the daemon's CPU milliseconds per MB
(``/proc/<pid>/stat``, every thread), the part of it spent by its event-loop thread (which
receives every layer's bytes: HTTP parsing, the hand-off to the unpackers; the other threads
hash, inflate and write blobs and files), the registry's CPU per MB, and the server time of a
PullImage of the image while it is present (a tag: one registry HEAD; from the daemon's debug
log). Between runs the image is removed, which garbage-collects its blobs and snapshots, so
every run downloads and unpacks everything again. ``--baseline DIR`` also starts a daemon
from another pinnace source tree (an older checkout: ``git worktree add /tmp/base main``) and
alternates the runs between the two, so a busy machine's noise falls on both alike.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.workload import cpu_seconds, thread_cpu_seconds  # noqa: E402
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

_SERVED = re.compile(r"ImageService/PullImage OK in ([0-9.]+) ms")


@dataclass
class Tree:
    """One daemon under test and its figures."""

    name: str
    daemon: Pinnaced
    mbs: list[float] = field(default_factory=list)
    cpu_ms_per_mb: list[float] = field(default_factory=list)
    loop_ms_per_mb: list[float] = field(default_factory=list)
    registry_ms_per_mb: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)


def _served_times(daemon: Pinnaced) -> list[float]:
    return [float(ms) for ms in _SERVED.findall(daemon.log_path.read_text(errors="replace"))]


def run_once(tree: Tree, name: str, compressed: int, warm: int, registry: int) -> str:
    _, image_api = tree.daemon.clients()
    spec = pb.ImageSpec(image=name)
    pid = tree.daemon.pid
    assert pid is not None
    cpu, loop, upstream = cpu_seconds(pid), thread_cpu_seconds(pid, pid), cpu_seconds(registry)
    start = time.perf_counter()
    image_api.PullImage(pb.PullImageRequest(image=spec), timeout=600)
    elapsed = time.perf_counter() - start
    megabytes = compressed / 1e6
    tree.mbs.append(megabytes / elapsed)
    tree.cpu_ms_per_mb.append((cpu_seconds(pid) - cpu) / megabytes * 1e3)
    tree.loop_ms_per_mb.append((thread_cpu_seconds(pid, pid) - loop) / megabytes * 1e3)
    tree.registry_ms_per_mb.append((cpu_seconds(registry) - upstream) / megabytes * 1e3)
    row = (
        f"{tree.name:>8} {elapsed:>8.3f} {tree.mbs[-1]:>8.1f} {tree.cpu_ms_per_mb[-1]:>9.2f} "
        f"{tree.loop_ms_per_mb[-1]:>7.2f} {tree.registry_ms_per_mb[-1]:>8.2f}"
    )
    if warm:
        before = len(_served_times(tree.daemon))
        for _ in range(warm):
            image_api.PullImage(pb.PullImageRequest(image=spec), timeout=60)
        served = _served_times(tree.daemon)[before:]
        if served:
            tree.warm_ms.append(statistics.median(served))
            row += f" {tree.warm_ms[-1]:>9.2f}"
    image_api.RemoveImage(pb.RemoveImageRequest(image=spec))
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--snapshotter", default="overlay", choices=["overlay", "native"])
    parser.add_argument("--baseline", type=Path, help="a pinnace source tree to compare with")
    parser.add_argument("--warm", type=int, default=10, help="present-image pulls per run")
    args = parser.parse_args()
    if args.baseline and not (args.baseline / "cri" / "daemon.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a pinnace source tree (no cri/daemon.py)")

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
            sources = [("this", REPO)]
            if args.baseline:
                sources.append(("baseline", args.baseline.resolve()))
            trees = []
            for label, root in sources:
                (base / label).mkdir()
                daemon = Pinnaced(
                    base / label, registry_hosts_dir=hosts, config_text=config, source_root=root
                )
                trees.append(Tree(label, daemon))
            try:
                for tree in trees:
                    tree.daemon.start()
                print(
                    f"image: {len(image.layers)} layers, {compressed / 1e6:.1f} MB compressed; "
                    f"snapshotter {args.snapshotter}, {args.concurrency} concurrent downloads"
                )
                print(
                    f"{'tree':>8} {'seconds':>8} {'MB/s':>8} {'CPU ms/MB':>9} {'of loop':>7} "
                    f"{'registry':>8} {'warm ms':>9}"
                )
                assert registry.pid is not None
                for run in range(args.runs):
                    for tree in trees[::-1] if run % 2 else trees:
                        row = run_once(tree, name, compressed, args.warm, registry.pid)
                        print(row, flush=True)
            finally:
                for tree in trees:
                    tree.daemon.close()
            for tree in trees:
                warm = f", present-image PullImage {statistics.median(tree.warm_ms):.2f} ms server"
                print(
                    f"{tree.name}: median {statistics.median(tree.mbs):.1f} MB/s "
                    f"(best {max(tree.mbs):.1f}), {statistics.median(tree.cpu_ms_per_mb):.2f} "
                    f"ms CPU per MB (its event-loop thread "
                    f"{statistics.median(tree.loop_ms_per_mb):.2f}; the registry "
                    f"{statistics.median(tree.registry_ms_per_mb):.2f})"
                    + (warm if tree.warm_ms else "")
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
