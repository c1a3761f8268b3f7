"""A reference CRI runtime for side-by-side benchmarks: Debian's containerd, in a temporary root.

``Containerd(base, ...)`` writes a config whose every path is under ``base`` (root, state,
socket, CNI conf dir, registry hosts dir), starts ``/usr/bin/containerd`` with it, waits for the
CRI to answer ``Version`` and, on exit, removes every pod it still has through the CRI, stops
the daemon by PID and unmounts whatever it left under ``base``. With ``install=True`` a missing
package is installed with apt-get (Debian's ``containerd``; it brings its own shims).

Nothing here is used by pinnace or its tests: it exists so that ``benchmarks/bench_cri.py`` can
measure pinnace and containerd in alternating rounds on the same machine, registry and CNI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support.daemon import cri_channel, cri_clients, mounts_under

BINARY = "/usr/bin/containerd"


def ensure_installed() -> None:
    """Install Debian's containerd package if its binary is missing."""
    if Path(BINARY).exists():
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "containerd"],
        check=True,
        env=env,
    )


def version() -> str:
    out = subprocess.run([BINARY, "--version"], capture_output=True, text=True, check=False)
    parts = out.stdout.split()
    return parts[2] if len(parts) > 2 else "unknown"


class Containerd:
    """containerd with its CRI plugin, every path under ``base``; ours by PID."""

    def __init__(self, base: Path, *, sandbox_image: str, hosts_dir: Path) -> None:
        self.base = base
        self.socket = base / "containerd.sock"
        self.cni_conf_dir = base / "net.d"
        self.log_path = base / "containerd.log"
        self._sandbox_image = sandbox_image
        self._hosts_dir = hosts_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: Any = None
        self._stubs: tuple[Any, Any] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _config(self) -> str:
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return "\n".join(
            [
                "version = 2",
                f'root = "{self.base / "root"}"',
                f'state = "{self.base / "state"}"',
                # Snapshotters this machine cannot use only add start-up noise.
                'disabled_plugins = ["io.containerd.snapshotter.v1.aufs",'
                ' "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",'
                ' "io.containerd.snapshotter.v1.devmapper"]',
                "[grpc]",
                f'  address = "{self.socket}"',
                "[ttrpc]",
                f'  address = "{self.base / "containerd.sock.ttrpc"}"',
                f"[{cri}]",
                f'  sandbox_image = "{self._sandbox_image}"',
                '  stream_server_address = "127.0.0.1"',
                '  stream_server_port = "0"',
                # No CAP_SYS_RESOURCE here: the pause container's -998 could not be written.
                "  restrict_oom_score_adj = true",
                f"[{cri}.cni]",
                '  bin_dir = "/usr/lib/cni"',
                f'  conf_dir = "{self.cni_conf_dir}"',
                f"[{cri}.registry]",
                f'  config_path = "{self._hosts_dir}"',
                f"[{cri}.containerd]",
                '  snapshotter = "overlayfs"',
                '  default_runtime_name = "runc"',
                f"[{cri}.containerd.runtimes.runc]",
                '  runtime_type = "io.containerd.runc.v2"',
                "",
            ]
        )

    def __enter__(self) -> Containerd:
        self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        config = self.base / "config.toml"
        config.write_text(self._config())
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [BINARY, "--config", str(config), "--log-level", "warn"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._await_ready(timeout=30)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _await_ready(self, timeout: float) -> None:
        runtime, _ = self.clients()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while (remaining := deadline - time.monotonic()) > 0:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"containerd exited with {self._proc.returncode}: "
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            try:
                # A short per-attempt deadline notices a daemon that died meanwhile.
                runtime.Version(
                    pb.VersionRequest(), timeout=min(remaining, 1.0), wait_for_ready=True
                )
                return
            except grpc.RpcError as exc:
                last = exc
        raise RuntimeError(f"containerd did not become ready in {timeout}s: {last}")

    def clients(self) -> tuple[Any, Any]:
        if self._stubs is None:
            self._channel = cri_channel(self.socket)
            self._stubs = cri_clients(self.socket, channel=self._channel)
        return self._stubs

    def _remove_all_pods(self) -> None:
        runtime, _ = self.clients()
        for pod in runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
            try:
                runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=60)
                runtime.RemovePodSandbox(
                    pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=60
                )
            except grpc.RpcError:
                pass  # best effort: the daemon is stopped and its mounts removed below

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                self._remove_all_pods()
        finally:
            if self._channel is not None:
                self._channel.close()
                self._channel = self._stubs = None
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for point in sorted(mounts_under([self.base]), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)
            shutil.rmtree(self.base / "state", ignore_errors=True)
