"""What NRI plugins add to a pod lifecycle, through the CRI of real pinnaced daemons.

    .venv/bin/python -m benchmarks.bench_nri [--runs 60] [--plugin process|thread]

Lifecycle = RunPodSandbox, CreateContainer, StartContainer (busybox sleep), StopContainer,
RemoveContainer, StopPodSandbox, RemovePodSandbox on the host network. Three daemons run side
by side: one with no plugin, one with one connected no-op plugin, one with three; their
lifecycles are interleaved (0, 1, 3, then 1, 3, 0, …), so the drift of a shared machine hits
the three setups alike, and what a plugin adds is also given as the median of the paired
differences (each lifecycle against the plugin-less one next to it). Each plugin subscribes
to every event but validation and answers at once: 9 NRI calls a lifecycle. ``--plugin
process`` (the default) runs each as a process of its own answering from one thread
(``tests/support/nri_noop.py``, as a Go stub plugin without handlers does); ``--plugin
thread`` uses the e2e tests' scripted plugin (``tests/support/nri_plugin.py``) inside the
benchmark's process, a thread per call, which adds its own Python cost to every round trip.
The daemons' own histograms of plugin round trips (their metrics endpoints) are printed too:
a direct figure beside the lifecycle timings.
"""

from __future__ import annotations

import argparse
import contextlib
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


SETUPS = (0, 1, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="lifecycles per setup")
    parser.add_argument(
        "--keep-log", type=Path, help="copy the daemons' logs here (<path>.<plugins>)"
    )
    parser.add_argument(
        "--plugin",
        choices=["process", "thread"],
        default="process",
        help="no-op plugins as processes of their own, or the scripted plugin in threads",
    )
    args = parser.parse_args()
    results: dict[int, list[float]] = {count: [] for count in SETUPS}
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-nri-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry, contextlib.ExitStack() as stack:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            daemons: dict[int, tuple[Pinnaced, int]] = {}
            for count in SETUPS:
                (base / f"d{count}").mkdir()
                with socket.socket() as probe:  # a free loopback port for the metrics endpoint
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                daemon = Pinnaced(
                    base / f"d{count}",
                    registry_hosts_dir=hosts,
                    config_text=f'[metrics]\naddress = "127.0.0.1:{port}"\n',
                )
                if args.keep_log is not None:
                    stack.callback(_keep_log, daemon, Path(f"{args.keep_log}.{count}"))
                stack.enter_context(daemon)
                daemons[count] = (daemon, port)
            run(daemons, image, args, results)
    report(args, results)
    return 0


def _keep_log(daemon: Pinnaced, to: Path) -> None:
    if daemon.log_path.exists():
        to.write_bytes(daemon.log_path.read_bytes())


def run(
    daemons: dict[int, tuple[Pinnaced, int]],
    image: str,
    args: argparse.Namespace,
    results: dict[int, list[float]],
) -> None:
    runtimes = {}
    for count, (daemon, _port) in daemons.items():
        runtime, image_api = daemon.clients()
        image_api.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
        runtimes[count] = runtime
    plugins = [
        NoopPlugin(daemons[count][0].nri_socket, f"noop{i}", f"{10 + i}", mode=args.plugin)
        for count in SETUPS
        for i in range(count)
    ]
    try:
        for p in plugins:
            p.start()
        for runtime in runtimes.values():  # warm up, and past every registration
            lifecycle(runtime, image)
            lifecycle(runtime, image)
        before = _plugin_calls(runtimes[1])
        for i in range(args.runs):
            order = SETUPS[i % 3 :] + SETUPS[: i % 3]
            for count in order:
                results[count].append(lifecycle(runtimes[count], image))
        args.calls_per_lifecycle = (_plugin_calls(runtimes[1]) - before) // args.runs
    finally:
        for p in plugins:
            p.close()
    args.call_seconds = {count: _nri_call_seconds(daemons[count][1]) for count in (1, 3)}


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
    base = results[0]
    print(
        f"pod lifecycle, {args.runs} per setup, interleaved across three daemons "
        f"(host network), plugins: {args.plugin}:"
    )
    for count, took in results.items():
        p50, mean = statistics.median(took), statistics.fmean(took)
        extra = ""
        if count:
            paired = statistics.median(t - b for t, b in zip(took, base, strict=True))
            extra = (
                f"  (+{(p50 - statistics.median(base)) * 1000:5.1f} ms p50,"
                f" paired median +{paired * 1000:5.1f} ms)"
            )
        print(
            f"  {count} no-op plugin(s): p50 {p50 * 1000:7.1f} ms, mean {mean * 1000:7.1f} ms"
            f"{extra}"
        )
    print(f"  NRI calls per lifecycle and plugin: {args.calls_per_lifecycle}")
    for count, (total, calls) in args.call_seconds.items():
        if calls:
            each = total / calls
            print(
                f"  daemon-measured plugin round trip, {count} plugin(s): {each * 1000:.2f} ms a"
                f" call over {calls} calls → {each * args.calls_per_lifecycle * count * 1000:.1f}"
                " ms a lifecycle"
            )


if __name__ == "__main__":
    sys.exit(main())
