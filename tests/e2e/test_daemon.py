"""pinnaced as a process: what it answers about itself, its socket, its lock, its shutdown,
its metrics, and UNIMPLEMENTED (never UNKNOWN) for RPCs not built yet."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys

import grpc
import httpx
import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support.daemon import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sample(body: str, metric: str, *labels: str) -> float:
    """The value of the one sample of ``metric`` whose labels include all of ``labels``."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(metric + "{") and all(label in line for label in labels)
    ]
    assert len(values) == 1, f"expected one {metric} sample with {labels}, got {values}"
    return values[0]


def test_version_status_and_runtime_config(pinnaced) -> None:
    daemon = pinnaced()
    runtime, _ = daemon.clients()

    version = runtime.Version(pb.VersionRequest())
    assert version.runtime_name == "pinnace"
    assert version.runtime_api_version == "v1"
    assert version.runtime_version

    status = runtime.Status(pb.StatusRequest(verbose=True))
    conditions = {c.type: c for c in status.status.conditions}
    assert conditions["RuntimeReady"].status is True
    assert conditions["NetworkReady"].status is False
    assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"
    assert conditions["NetworkReady"].message
    names = [h.name for h in status.runtime_handlers]
    assert names[0] == ""  # the default handler, under the empty name
    assert {"runc", "crun"} <= set(names)
    assert "config" in status.info

    config = runtime.RuntimeConfig(pb.RuntimeConfigRequest())
    assert config.linux.cgroup_driver == pb.CGROUPFS


def test_rpcs_not_built_yet_are_unimplemented(pinnaced) -> None:
    daemon = pinnaced()
    runtime, _ = daemon.clients()
    with pytest.raises(grpc.RpcError) as info:
        runtime.CheckpointContainer(pb.CheckpointContainerRequest(container_id="x"))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CheckpointContainer" in info.value.details()


def test_socket_mode_and_clean_shutdown(pinnaced) -> None:
    daemon = pinnaced()
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o660
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.socket.exists()
    assert "shutting down" in daemon.log_tail(20)


def test_second_daemon_on_the_same_root_refuses(pinnaced) -> None:
    first = pinnaced()
    second_socket = first.short_dir / "second.sock"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cri.daemon",
            "--root",
            str(first.root),
            "--state",
            str(first.short_dir / "state2"),
            "--address",
            f"unix://{second_socket}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"pid {first.pid}" in result.stderr
    assert "already using root" in result.stderr
    # the first daemon is unaffected
    runtime, _ = first.clients()
    assert runtime.Version(pb.VersionRequest()).runtime_name == "pinnace"


def test_invalid_config_is_refused_with_the_key_named(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[images]\nmax_concurrent_downloads = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "cri.daemon", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "images.max_concurrent_downloads" in result.stderr


def test_metrics_endpoint_counts_rpcs(pinnaced) -> None:
    port = _free_port()
    daemon = pinnaced(extra_args=["--metrics-address", f"127.0.0.1:{port}"])
    runtime, image = daemon.clients()
    runtime.Version(pb.VersionRequest())
    with pytest.raises(grpc.RpcError):
        image.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="Not A Ref")))
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert _sample(body, "pinnace_grpc_request_duration_seconds_count", 'method="Version"') >= 1
    assert (
        _sample(body, "pinnace_grpc_errors_total", 'method="PullImage"', 'code="INVALID_ARGUMENT"')
        == 1
    )
    assert "pinnace_grpc_in_flight_requests" in body
