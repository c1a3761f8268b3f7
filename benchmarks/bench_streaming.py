"""Streaming: exec round trip over SPDY and WebSocket next to ExecSync, port-forward
throughput (one connection and 8 in parallel on one session), and the daemon's RSS with 50
idle exec sessions open; a real pinnaced with runc and conmon, on this machine.

    .venv/bin/python -m benchmarks.bench_streaming [--runs 50] [--mb 256] [--sessions 50]

Exec: ``echo hi`` timed from the Exec RPC to the exit status (what ``kubectl exec`` waits
for), SPDY with the test client (tests/support/spdy_client.py), WebSocket with the
``kubernetes`` package's client. Port-forward: a pod's busybox ``httpd`` serving a 32 MiB
file, fetched through ``portforward.k8s.io`` by the CLI's client session
(cri/cli/stream_client.py), one connection at a time or 8 at once on one session; MB/s of
payload, and MB per CPU-second of the daemon (the figure a busy shared host does not skew).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from cri.cli.stream_client import SpdyClientSession  # noqa: E402
from tests.support import images  # noqa: E402
from tests.support.daemon import Pinnaced, hosts_toml  # noqa: E402
from tests.support.push import push_image  # noqa: E402
from tests.support.registry import Registry  # noqa: E402
from tests.support.spdy_client import SpdyClient, remote_command  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(what: str, took: list[float]) -> str:
    return (
        f"{what:<28} p50 {statistics.median(took) * 1000:7.1f} ms   "
        f"p90 {_pct(took, 0.9) * 1000:7.1f} ms   (n={len(took)})"
    )


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _setup(runtime: Any, image: str, base: Path) -> tuple[str, str]:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    pod_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="bench"),
        hostname=name,
        log_directory=str(base / "logs"),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )
    pod = runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config)).pod_sandbox_id
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="srv"),
        image=pb.ImageSpec(image=image),
        # httpd serves each connection in its own process (sendfile from a 32 MiB file)
        command=[
            "sh",
            "-c",
            "mkdir -p /srv && head -c 33554432 /dev/zero > /srv/z && exec httpd -f -p 9000 -h /srv",
        ],
        log_path="srv.log",
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
            )
        ),
    )
    ctr = runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=pod, config=config, sandbox_config=pod_config)
    ).container_id
    runtime.StartContainer(pb.StartContainerRequest(container_id=ctr))
    probe = ["sh", "-c", "netstat -ltn | grep -q ':9000 '"]  # httpd listens once the file is made
    for _ in range(200):
        if runtime.ExecSync(pb.ExecSyncRequest(container_id=ctr, cmd=probe)).exit_code == 0:
            break
    return pod, ctr


def bench_exec(runtime: Any, ctr: str, runs: int) -> None:
    from kubernetes.client import Configuration
    from kubernetes.stream.ws_client import WSClient

    def url() -> str:
        return str(
            runtime.Exec(
                pb.ExecRequest(container_id=ctr, cmd=["echo", "hi"], stdout=True, stderr=True)
            ).url
        )

    def sync() -> None:
        assert runtime.ExecSync(pb.ExecSyncRequest(container_id=ctr, cmd=["echo", "hi"])).stdout

    def spdy() -> None:
        assert remote_command(url()).stdout == b"hi\n"

    def ws() -> None:
        client = WSClient(Configuration(), url().replace("http://", "ws://", 1), None, True)
        client.run_forever(timeout=30)
        assert client.read_stdout() == "hi\n" and client.returncode == 0
        client.close()

    for name, fn in (("ExecSync", sync), ("Exec over SPDY", spdy), ("Exec over WebSocket", ws)):
        fn()  # warm
        took = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            took.append(time.perf_counter() - t0)
        print(_line(f"echo hi: {name}", took))


async def _download(client: SpdyClientSession, rid: int) -> int:
    """GET the 32 MiB file through one forwarded connection; returns the bytes received."""
    got = 0

    async def count(data: bytes) -> None:
        nonlocal got
        got += len(data)

    headers = {"port": "9000", "requestID": str(rid)}
    error = await client.open({"streamType": "error", **headers})
    data = await client.open({"streamType": "data", **headers}, on_data=count)
    await client.send(error, b"", fin=True)
    await client.send(data, b"GET /z HTTP/1.0\r\n\r\n", fin=True)
    await asyncio.wait_for(data.ended.wait(), 300)
    return got


async def _throughput(url: str, parallel: int, total: int) -> float:
    """``total`` downloads, ``parallel`` at a time, on one session; MB/s of payload."""
    client, _ = await SpdyClientSession.connect(url, "portforward.k8s.io")
    try:
        t0 = time.perf_counter()
        got = 0
        rid = 0
        while rid < total:
            batch = range(rid, min(total, rid + parallel))
            got += sum(await asyncio.gather(*(_download(client, n) for n in batch)))
            rid += len(batch)
        took = time.perf_counter() - t0
        return got / took / 1e6
    finally:
        await client.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (clock ticks from /proc/<pid>/stat)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_port_forward(runtime: Any, pod: str, mb: int, daemon_pid: int) -> None:
    """Wall-clock MB/s, and MB per CPU-second the daemon spent (the figure that does not
    depend on what else the machine runs: on a shared host the wall figure is a floor)."""
    for parallel in (1, 8):
        rates, per_cpu = [], []
        for _ in range(3):
            url = runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod, port=[9000])).url
            cpu0 = _cpu_seconds(daemon_pid)
            rates.append(asyncio.run(_throughput(url, parallel, max(1, mb // 32))))
            per_cpu.append(mb * 1.048576 / max(_cpu_seconds(daemon_pid) - cpu0, 1e-3))
        print(
            f"port-forward {mb} MB, {parallel} conn{'s' if parallel > 1 else ''}:"
            f"  median {statistics.median(rates):7.1f} MB/s   best {max(rates):7.1f} MB/s"
            f"   daemon CPU: {statistics.median(per_cpu):7.1f} MB per CPU-second"
        )


def bench_idle_sessions(runtime: Any, ctr: str, daemon: Pinnaced, sessions: int) -> None:
    before = _rss_kb(daemon.pid or 0)
    clients = []
    try:
        for _ in range(sessions):
            url = runtime.Exec(
                pb.ExecRequest(container_id=ctr, cmd=["cat"], stdin=True, stdout=True, stderr=True)
            ).url
            c = SpdyClient(url)
            streams = [
                c.open_stream({"streamType": t}) for t in ("error", "stdin", "stdout", "stderr")
            ]
            for s in streams:
                s.replied.wait(30)
            clients.append((c, streams))
        # every session's process is running once its conmon reported the pid
        execs = daemon.state / "execs"
        for _ in range(1000):
            if len(list(execs.iterdir())) == sessions and all(
                (d / "pid").exists() for d in execs.iterdir()
            ):
                break
            runtime.Version(pb.VersionRequest())
        after = _rss_kb(daemon.pid or 0)
        conmon_kb = 0
        for d in execs.iterdir():
            try:
                conmon_kb += _rss_kb(int((d / "conmon.pid").read_text()))
            except (OSError, ValueError):
                pass
        print(
            f"{sessions} idle exec sessions: daemon RSS {before / 1024:.1f} -> "
            f"{after / 1024:.1f} MB (+{(after - before) / sessions:.0f} kB each); "
            f"their conmons {conmon_kb / 1024:.1f} MB RSS in all"
        )
    finally:
        for c, _ in clients:
            c.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument(
        "--only", choices=["exec", "port-forward", "sessions"], action="append", default=None
    )
    args = parser.parse_args()
    only = set(args.only or ["exec", "port-forward", "sessions"])
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-") as tmp:
        base = Path(tmp)
        with Registry.plain(parent_dir=base) as registry:
            push_image(registry.url, "bench/busybox", "v1", images.busybox_image())
            image = f"{registry.host}/bench/busybox:v1"
            hosts = base / "certs.d"
            hosts_toml(hosts, registry.host, plain_http=True)
            (base / "d").mkdir()
            daemon = Pinnaced(
                base / "d",
                registry_hosts_dir=hosts,
                config_text=f'[images]\nsandbox_image = "{image}"\n',
            )
            daemon.cni_conf_dir.mkdir(parents=True, exist_ok=True)
            (daemon.cni_conf_dir / "10-lo.conflist").write_text(
                json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
            )
            with daemon:
                runtime, image_api = daemon.clients()
                image_api.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)))
                pod, ctr = _setup(runtime, image, base)
                try:
                    if "exec" in only:
                        bench_exec(runtime, ctr, args.runs)
                    if "port-forward" in only:
                        bench_port_forward(runtime, pod, args.mb, daemon.pid or 0)
                    if "sessions" in only:
                        bench_idle_sessions(runtime, ctr, daemon, args.sessions)
                finally:
                    runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
                    runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
    return 0


if __name__ == "__main__":
    sys.exit(main())
