"""Prometheus metrics: one registry per daemon (no module-level state), served over HTTP on
the configured address only when one is given."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import start_http_server

from runtime.errors import FailedPrecondition
from runtime.images.progress import Phase, Progress

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
)


class Metrics:
    """The daemon's metrics. Construct once in the composition root and pass it down."""

    def record_nri(self, plugin: str, operation: str, result: str, seconds: float) -> None:
        """One call to an NRI plugin (the adaptation's recorder)."""
        self.nri_invocations.labels(plugin, operation, result).inc()
        self.nri_latency.labels(operation).observe(seconds)

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_latency = Histogram(
            "pinnace_grpc_request_duration_seconds",
            "Time to answer a CRI/pinnace gRPC request, by method.",
            ["service", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rpc_total = Counter(
            "pinnace_grpc_requests",
            "gRPC requests answered, by method and status code.",
            ["service", "method", "code"],
            registry=self.registry,
        )
        self.rpc_errors = Counter(
            "pinnace_grpc_errors",
            "gRPC requests that ended with a status other than OK, by method and code.",
            ["service", "method", "code"],
            registry=self.registry,
        )
        self.rpc_in_flight = Gauge(
            "pinnace_grpc_in_flight_requests",
            "gRPC requests being handled right now, by method.",
            ["service", "method"],
            registry=self.registry,
        )
        self.image_pulls = Counter(
            "pinnace_image_pulls",
            "Image pulls finished, by outcome (success or the gRPC code of the failure).",
            ["outcome"],
            registry=self.registry,
        )
        self.image_pull_bytes = Counter(
            "pinnace_image_pull_bytes",
            "Compressed layer bytes downloaded from registries (pull progress).",
            registry=self.registry,
        )
        self.images = Gauge("pinnace_images", "Images in the image store.", registry=self.registry)
        self.nri_invocations = Counter(
            "pinnace_nri_plugin_invocations",
            "Calls to NRI plugins, by plugin, operation and result (ok, error, timeout).",
            ["plugin", "operation", "result"],
            registry=self.registry,
        )
        self.nri_latency = Histogram(
            "pinnace_nri_plugin_duration_seconds",
            "Time an NRI plugin took to answer, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def pull_sink(self) -> Callable[[Progress], None]:
        """A progress sink for one pull: adds each blob's newly downloaded bytes to
        ``image_pull_bytes``."""
        seen: dict[str, int] = {}

        def sink(progress: Progress) -> None:
            if progress.phase is Phase.DOWNLOADING and progress.digest:
                delta = progress.offset - seen.get(progress.digest, 0)
                if delta > 0:
                    self.image_pull_bytes.inc(delta)
                    seen[progress.digest] = progress.offset

        return sink

    def serve(self, address: str) -> None:
        """Serve ``/metrics`` on ``host:port`` in a background thread."""
        host, _, port = address.rpartition(":")
        try:
            server, thread = start_http_server(
                int(port), addr=host or "127.0.0.1", registry=self.registry
            )
        except OSError as exc:
            raise FailedPrecondition(
                f"metrics.address {address}: cannot listen: {exc.strerror or exc}"
                + (
                    " (another process has it; choose another with --metrics-address or"
                    " [metrics] address)"
                    if exc.errno == errno.EADDRINUSE
                    else ""
                )
            ) from None
        self._server, self._thread = server, thread
        log.info("metrics served on http://%s/metrics", address)

    def close(self) -> None:
        """Stop serving. Blocking (``shutdown`` waits for the serving thread's next poll, up
        to half a second): call it from a thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
