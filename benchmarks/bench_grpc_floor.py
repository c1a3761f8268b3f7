"""The floor under every polled CRI call: a bare ``grpc.aio`` server answering ``Version``, with
and without a no-op interceptor, timed from the same synchronous Python client the other
benchmarks use. Compare its p50 with pinnaced's own ``Version`` (``bench_scale``, ``bench_cri``)
to see how much of a List or Status call is pinnace's and how much is grpc-python's.

    .venv/bin/python -m benchmarks.bench_grpc_floor [--calls 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grpc import aio  # noqa: E402

from benchmarks.workload import pct, timed  # noqa: E402
from cri.api.runtime.v1 import api_pb2 as pb  # noqa: E402
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc  # noqa: E402
from tests.support.daemon import cri_channel, cri_clients  # noqa: E402


class _Version(pb_grpc.RuntimeServiceServicer):
    async def Version(self, request: Any, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name="floor")


class _NoopInterceptor(aio.ServerInterceptor):
    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        return await continuation(details)


def measure(socket: Path, *, interceptor: bool, calls: int) -> list[float]:
    """Serve Version on ``socket`` from a thread's loop and time ``calls`` calls to it."""
    ready = threading.Event()
    loop_box: dict[str, Any] = {}

    async def serve() -> None:
        server = aio.server(interceptors=[_NoopInterceptor()] if interceptor else [])
        pb_grpc.add_RuntimeServiceServicer_to_server(_Version(), server)
        server.add_insecure_port(f"unix://{socket}")
        await server.start()
        loop_box["loop"], loop_box["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        await loop_box["stop"].wait()
        await server.stop(0)

    thread = threading.Thread(target=lambda: asyncio.run(serve()))
    thread.start()
    ready.wait()
    channel = cri_channel(socket)
    try:
        runtime, _ = cri_clients(socket, channel=channel)
        timed(lambda: runtime.Version(pb.VersionRequest()), 200)  # warm
        return timed(lambda: runtime.Version(pb.VersionRequest()), calls)
    finally:
        channel.close()
        loop_box["loop"].call_soon_threadsafe(loop_box["stop"].set)
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-grpc-") as tmp:
        for n in range(args.rounds):
            for interceptor in (False, True):
                name = "no-op interceptor" if interceptor else "no interceptor"
                took = measure(
                    Path(tmp) / f"{n}-{int(interceptor)}.sock",
                    interceptor=interceptor,
                    calls=args.calls,
                )
                print(
                    f"bare grpc.aio Version, {name}: p50 {pct(took, 0.5) * 1000:.3f} ms, "
                    f"p99 {pct(took, 0.99) * 1000:.3f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
