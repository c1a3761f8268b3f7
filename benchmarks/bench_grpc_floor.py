"""The floor under every polled CRI call: bare gRPC servers, each in its own process, answering
``Version`` or a 30-container ``ListContainers``, timed from the same synchronous Python client
the other benchmarks use. Compare with pinnaced's own figures (``bench_scale``, ``bench_cri``)
to see how much of a List or Status call is pinnace's and how much is grpc-python's.

    .venv/bin/python -m benchmarks.bench_grpc_floor [--calls 3000] [--rounds 2] [--servers a,b]

The server runs in a child process (a server sharing the client's process would share its GIL
and its CPU figures). For each server, in alternating rounds: round-trip p50/p99 and the CPU
seconds per call of the server process and of the client process (utime + stime from
/proc/<pid>/stat over the timed calls, all threads), which on a busy machine say more than wall
time does. Servers:

- ``aio``: ``grpc.aio`` with the generated servicer;
- ``aio+interceptor``: the same with a no-op ``aio.ServerInterceptor``;
- ``aio+options``: the same with the channel arguments one might hope cheaper (BDP probe off,
  no ``SO_REUSEPORT``, one concurrent stream limit lifted);
- ``sync``: ``grpc.server`` on a 4-thread pool;
- ``aio-list30``: ``ListContainers`` answering one prebuilt 30-container message (serialized
  by grpc per call, as pinnaced's list cache does now);
- ``aio-list30-bytes``: the same answered as bytes serialized once, through a generic handler
  whose serializer is the identity;
- ``aio-list30-registered-bytes``: the bytes through the generated (registered) method, its
  serializer passing bytes through, as pinnaced serves its cached List answers.
- ``sync-list30-bytes``: the pre-serialized answer from the sync server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
from grpc import aio  # noqa: E402

from benchmarks.workload import cpu_seconds, pct, timed  # noqa: E402
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc  # noqa: E402
from cri.server import passing_bytes  # noqa: E402
from tests.support.daemon import cri_channel, cri_clients  # noqa: E402

SERVERS = (
    "aio",
    "aio+interceptor",
    "aio+options",
    "sync",
    "aio-list30",
    "aio-list30-bytes",
    "aio-list30-registered-bytes",
    "sync-list30-bytes",
)
_SERVICE = "runtime.v1.RuntimeService"
_CHEAP_OPTIONS = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.so_reuseport", 0),
    ("grpc.max_concurrent_streams", 1000),
    ("grpc.enable_retries", 0),
]


def list30() -> pb.ListContainersResponse:
    """Thirty container summaries shaped like pinnaced's (labels and annotations as the
    kubelet sets them)."""
    out = pb.ListContainersResponse()
    for i in range(30):
        out.containers.add(
            id=f"{i:064x}",
            pod_sandbox_id=f"{i + 1000:064x}",
            metadata=pb.ContainerMetadata(name="sleeper", attempt=0),
            image=pb.ImageSpec(image=f"sha256:{i:064x}"),
            image_ref=f"sha256:{i:064x}",
            image_id=f"sha256:{i:064x}",
            state=pb.CONTAINER_RUNNING,
            created_at=time.time_ns(),
            labels={
                "io.kubernetes.container.name": "sleeper",
                "io.kubernetes.pod.name": f"bench-{i:08x}",
                "io.kubernetes.pod.namespace": "bench",
                "io.kubernetes.pod.uid": f"{i:032x}",
            },
            annotations={
                "io.kubernetes.container.hash": "1234abcd",
                "io.kubernetes.container.restartCount": "0",
                "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                "io.kubernetes.container.terminationMessagePolicy": "File",
                "io.kubernetes.pod.terminationGracePeriod": "30",
            },
        )
    return out


class _Servicer(pb_grpc.RuntimeServiceServicer):
    def __init__(self) -> None:
        self._list = list30()

    async def Version(self, request: Any, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name="floor")

    async def ListContainers(self, request: Any, context: Any) -> pb.ListContainersResponse:
        return self._list


class _BytesServicer(pb_grpc.RuntimeServiceServicer):
    def __init__(self) -> None:
        self._wire = list30().SerializeToString()

    async def ListContainers(self, request: Any, context: Any) -> bytes:
        return self._wire


class _PassBytes(aio.ServerInterceptor):
    """Rewraps each handler with a serializer that sends bytes as they are (pinnaced's
    interceptor does this, ``cri/server.py``)."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            handler.unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=passing_bytes(handler.response_serializer),
        )


class _SyncServicer(pb_grpc.RuntimeServiceServicer):
    def Version(self, request: Any, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name="floor")


class _NoopInterceptor(aio.ServerInterceptor):
    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        return await continuation(details)


def _bytes_handler(payload: bytes, *, sync: bool) -> grpc.GenericRpcHandler:
    """ListContainers answered with ``payload`` as is (the identity serializer)."""

    def answer(request: Any, context: Any) -> bytes:
        return payload

    async def answer_async(request: Any, context: Any) -> bytes:
        return payload

    return grpc.method_handlers_generic_handler(
        _SERVICE,
        {
            "ListContainers": grpc.unary_unary_rpc_method_handler(
                answer if sync else answer_async,
                request_deserializer=None,
                response_serializer=None,
            )
        },
    )


def serve(kind: str, socket: Path) -> None:
    """The server process: serve ``kind`` on ``socket`` until stdin closes."""
    address = f"unix://{socket}"
    if kind.startswith("sync"):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        if kind == "sync-list30-bytes":
            server.add_generic_rpc_handlers(
                (_bytes_handler(list30().SerializeToString(), sync=True),)
            )
        else:
            pb_grpc.add_RuntimeServiceServicer_to_server(_SyncServicer(), server)
        server.add_insecure_port(address)
        server.start()
        print("ready", flush=True)
        sys.stdin.read()
        server.stop(0)
        return

    async def run() -> None:
        interceptors: list[aio.ServerInterceptor] = []
        if kind == "aio+interceptor":
            interceptors = [_NoopInterceptor()]
        elif kind == "aio-list30-registered-bytes":
            interceptors = [_PassBytes()]
        server = aio.server(
            interceptors=interceptors,
            options=_CHEAP_OPTIONS if kind == "aio+options" else [],
        )
        if kind == "aio-list30-registered-bytes":
            pb_grpc.add_RuntimeServiceServicer_to_server(_BytesServicer(), server)
        elif kind == "aio-list30-bytes":
            server.add_generic_rpc_handlers(
                (_bytes_handler(list30().SerializeToString(), sync=False),)
            )
        else:
            pb_grpc.add_RuntimeServiceServicer_to_server(_Servicer(), server)
        server.add_insecure_port(address)
        await server.start()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop(0)

    asyncio.run(run())


def measure(kind: str, socket: Path, calls: int) -> tuple[list[float], float, float]:
    """(round-trip seconds, server CPU seconds per call, client CPU seconds per call)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_grpc_floor", "--serve", kind, str(socket)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"server {kind} did not start")
        channel = cri_channel(socket)
        try:
            runtime, _ = cri_clients(socket, channel=channel)
            call: Callable[[], object]
            if "list30" in kind:
                request = pb.ListContainersRequest(filter=pb.ContainerFilter())
                call = lambda: runtime.ListContainers(request)  # noqa: E731
            else:
                call = lambda: runtime.Version(pb.VersionRequest())  # noqa: E731
            timed(call, 300)  # warm
            server_before, client_before = cpu_seconds(child.pid), cpu_seconds(os.getpid())
            took = timed(call, calls)
            server_cpu = (cpu_seconds(child.pid) - server_before) / calls
            client_cpu = (cpu_seconds(os.getpid()) - client_before) / calls
        finally:
            channel.close()
        return took, server_cpu, client_cpu
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--servers", type=lambda s: s.split(","), default=list(SERVERS))
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "SOCKET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], Path(args.serve[1]))
        return 0
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; known: {', '.join(SERVERS)}")
    print("| server | round | p50 ms | p99 ms | server CPU ms/call | client CPU ms/call |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-grpc-") as tmp:
        for n in range(args.rounds):
            for kind in args.servers:
                took, server_cpu, client_cpu = measure(kind, Path(tmp) / f"{n}.sock", args.calls)
                print(
                    f"| {kind} | {n + 1} | {pct(took, 0.5) * 1e3:.3f} "
                    f"| {pct(took, 0.99) * 1e3:.3f} "
                    f"| {server_cpu * 1e3:.3f} | {client_cpu * 1e3:.3f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
