"""What NRI plugins add to a pod lifecycle, through the CRI of a real pinnaced.

    .venv/bin/python -m benchmarks.bench_nri [--runs 30] [--rounds 3] [--plugin process|thread]

Lifecycle = RunPodSandbox, CreateContainer, StartContainer (busybox sleep), StopContainer,
RemoveContainer, StopPodSandbox, RemovePodSandbox on the host network; the same daemon is
measured with no plugin, one connected no-op plugin and three, in alternating rounds (the
machine is shared, so conditions drift). Each plugin subscribes to every event but validation
and answers at once: 9 NRI calls a lifecycle. ``--plugin process`` (the default) runs each as
a process of its own answering from one thread (``tests/support/nri_noop.py``, as a Go stub
plugin without handlers does); ``--plugin thread`` uses the e2e tests' scripted plugin
(``tests/support/nri_plugin.py``) inside the benchmark's process, a thread per call, which
adds its own Python cost to every round trip.
The daemon's own histogram of plugin round trips (its metrics endpoint) is printed too: the
lifecycle medians are noisy on a shared machine, the round trip is a direct figure.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.nri_plugin import ScriptedPlugin  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def _pod_config() -> pb.PodSandboxConfig:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="bench"),
        hostname=name,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER)
            )
        ),
    )


def lifecycle(stub: Any, image: str) -> float:
    start = time.perf_counter()
    config = _pod_config()
    pod = stub.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id
    ctr = stub.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=pod,
            config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="sleeper"),
                image=pb.ImageSpec(image=image),
                command=["sleep", "3600"],
                linux=pb.LinuxContainerConfig(
                    security_context=pb.LinuxContainerSecurityContext(
                        namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                    )
                ),
            ),
            sandbox_config=config,
        ),
        timeout=60,
    ).container_id
    stub.StartContainer(pb.StartContainerRequest(container_id=ctr), timeout=60)
    stub.StopContainer(pb.StopContainerRequest(container_id=ctr, timeout=0), timeout=60)
    stub.RemoveContainer(pb.RemoveContainerRequest(container_id=ctr), timeout=60)
    stub.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    stub.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="lifecycles per round and setup")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep-log", type=Path, help="copy the daemon's log here at the end")
    parser.add_argument(
        "--plugin",
        choices=["process", "thread"],
        default="process",
        help="no-op plugins as processes of their own, or the scripted plugin in threads",
    )
    args = parser.parse_args()
    args.calls_per_lifecycle = 0
    args.call_seconds = (0.0, 0)
    results: dict[int, list[float]] = {0: [], 1: [], 3: []}
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-nri-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            (base / "d").mkdir()
            with socket.socket() as probe:  # a free loopback port for the metrics endpoint
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            daemon = Pinnaced(
                base / "d",
                registry_hosts_dir=hosts,
                config_text=f'[metrics]\naddress = "127.0.0.1:{port}"\n',
            )
            try:
                run_rounds(daemon, image, args, results, port)
            finally:
                if args.keep_log is not None and daemon.log_path.exists():
                    args.keep_log.write_bytes(daemon.log_path.read_bytes())
    report(args, results)
    return 0


def run_rounds(
    daemon: Pinnaced,
    image: str,
    args: argparse.Namespace,
    results: dict[int, list[float]],
    port: int,
) -> None:
    with daemon:
        runtime, image_api = daemon.clients()
        image_api.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
        lifecycle(runtime, image)  # warm up
        for _ in range(args.rounds):
            for count in (0, 1, 3):
                plugins = [
                    NoopPlugin(daemon.nri_socket, f"noop{i}", f"{10 + i}", mode=args.plugin)
                    for i in range(count)
                ]
                try:
                    for p in plugins:
                        p.start()
                    lifecycle(runtime, image)  # the first after a registration
                    before = _plugin_calls(runtime)
                    results[count] += [lifecycle(runtime, image) for _ in range(args.runs)]
                    if plugins:
                        made = _plugin_calls(runtime) - before
                        args.calls_per_lifecycle = made // (args.runs * count)
                finally:
                    for p in plugins:
                        p.close()
        args.call_seconds = _nri_call_seconds(port)


class NoopPlugin:
    """One no-op plugin: a process of its own (``nri_noop``) or the scripted plugin's threads."""

    def __init__(self, socket_path: Path, name: str, index: str, *, mode: str) -> None:
        self._args = (str(socket_path), name, index)
        self._mode = mode
        self._process: subprocess.Popen[str] | None = None
        self._scripted: ScriptedPlugin | None = None

    def start(self) -> None:
        if self._mode == "thread":
            self._scripted = ScriptedPlugin(self._args[0], name=self._args[1], index=self._args[2])
            self._scripted.start()
            return
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.nri_noop", *self._args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":  # "" when it exited
            raise RuntimeError(f"no-op plugin {self._args[1]} did not synchronize")

    def close(self) -> None:
        if self._scripted is not None:
            self._scripted.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


def _plugin_calls(runtime: Any) -> int:
    """Calls pinnaced made to the connected plugins (its verbose Status)."""
    status = runtime.Status(pb.StatusRequest(verbose=True), timeout=10)
    return sum(p["calls"] for p in json.loads(status.info["nri"])["plugins"])


def _nri_call_seconds(port: int) -> tuple[float, int]:
    """(sum, count) of the daemon's NRI plugin call durations for lifecycle events."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total, count = 0.0, 0
    for line in text.splitlines():
        if not line.startswith("pinnace_nri_plugin_duration_seconds_"):
            continue
        name, value = line.rsplit(" ", 1)
        if 'operation="Synchronize"' in name or 'operation="Configure"' in name:
            continue
        if name.startswith("pinnace_nri_plugin_duration_seconds_sum"):
            total += float(value)
        elif name.startswith("pinnace_nri_plugin_duration_seconds_count"):
            count += int(float(value))
    return total, count


def report(args: argparse.Namespace, results: dict[int, list[float]]) -> None:
    base_p50 = statistics.median(results[0])
    print(
        f"pod lifecycle, {args.rounds} rounds x {args.runs} per setup (host network), "
        f"plugins: {args.plugin}:"
    )
    for count, took in results.items():
        p50, mean = statistics.median(took), statistics.fmean(took)
        extra = "" if count == 0 else f"  (+{(p50 - base_p50) * 1000:5.1f} ms p50)"
        print(
            f"  {count} no-op plugin(s): p50 {p50 * 1000:7.1f} ms, mean {mean * 1000:7.1f} ms"
            f"{extra}"
        )
    print(f"  NRI calls per lifecycle and plugin: {args.calls_per_lifecycle}")
    total, count = args.call_seconds
    if count:
        each = total / count
        print(
            f"  daemon-measured plugin round trip: {each * 1000:.2f} ms a call over {count} calls"
            f" → {each * args.calls_per_lifecycle * 1000:.1f} ms a lifecycle per plugin"
        )


if __name__ == "__main__":
    sys.exit(main())
