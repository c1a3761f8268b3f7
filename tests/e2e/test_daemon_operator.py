"""pinnaced as an operator meets it: a taken metrics port is one line and exit 1; ``--address``
takes a bare path; a socket path another daemon serves, or a file that is not a socket, is
refused and never taken over; ``--version``; readiness through sd_notify; log levels that mean
something (INFO: state changes and failures, DEBUG: RPCs and registry requests); the sandbox
image is pulled only for pods that need an infra container."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from cri.api.runtime.v1 import api_pb2 as pb
from tests.e2e.conftest import PinnacedFactory
from tests.support.cli import one_line_failure, run_cli
from tests.support.daemon import DaemonError, Pinnaced, hosts_toml
from tests.support.registry import Registry

UNREACHABLE_PAUSE = "127.0.0.1:9/never/pause:1"  # the discard port: nothing answers there


def _daemon(tmp_path: Path, registry: Registry, *extra: str, **kwargs: object) -> Pinnaced:
    tmp_path.mkdir(exist_ok=True)
    hosts = tmp_path / "certs.d"
    hosts_toml(hosts, registry.host, plain_http=True)
    config = f'[images]\nsandbox_image = "{UNREACHABLE_PAUSE}"\n'
    return Pinnaced(
        tmp_path, registry_hosts_dir=hosts, extra_args=extra, config_text=config, **kwargs
    )  # type: ignore[arg-type]


def test_version_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cri.daemon", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("pinnaced "), result


@pytest.mark.parametrize(
    ("flags", "prefix", "hint"),
    [
        (("--metrics-address", "127.0.0.1:{port}"), "metrics.address 127.0.0.1:{port}",
         "--metrics-address"),
        (("--stream-port", "{port}"), "streaming 127.0.0.1:{port}", "--stream-port"),
    ],
    ids=["metrics", "streaming"],
)  # fmt: skip
def test_a_taken_port_is_one_clear_line_and_exit_1(
    tmp_path: Path, registry: Registry, flags: tuple[str, str], prefix: str, hint: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = [f.format(port=port) for f in flags]
        last = _refused_start(_daemon(tmp_path, registry, *args))
    assert last.startswith(f"pinnaced: {prefix.format(port=port)}: cannot listen:"), last
    assert hint in last


def test_bare_address_readiness_and_info_log(
    tmp_path: Path, registry: Registry, pushed_busybox: str
) -> None:
    notify_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(notify_path))
        systemd.settimeout(60)
        daemon = _daemon(
            tmp_path / "d", registry, "--log-level", "info",
            env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
        )  # fmt: skip
        # a bare path, as containerd's --address takes (the argument after the harness's wins)
        daemon.extra_args = (*daemon.extra_args, "--address", str(daemon.socket))
        daemon.cni_conf_dir.mkdir(parents=True)
        (daemon.cni_conf_dir / "10-lo.conflist").write_text(
            json.dumps({"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]})
        )
        try:
            daemon.start()
            message = systemd.recv(4096).decode()
            assert "READY=1" in message.splitlines(), message
            assert run_cli(daemon.socket, "version").returncode == 0

            # a pod with no shared PID namespace needs no infra container, so the sandbox
            # image (on a registry nothing answers) is never pulled
            manifest = tmp_path / "pod.yaml"
            manifest.write_text(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: journal, namespace: ops}\nspec:\n"
                "  terminationGracePeriodSeconds: 1\n  containers:\n"
                f"  - name: once\n    image: {pushed_busybox}\n"
                '    command: ["sh", "-c", "echo done"]\n'
            )
            roots = ["--log-root", str(tmp_path / "logs"), "--play-root", str(tmp_path / "play")]
            played = run_cli(
                daemon.socket, "play", "-q", str(manifest), *roots, "--resolv-conf", ""
            )
            assert played.returncode == 0, played.stderr
            images = daemon.image.ListImages(pb.ListImagesRequest()).images
            assert UNREACHABLE_PAUSE not in [t for i in images for t in i.repo_tags]
            # a failure is logged at INFO too
            failed = run_cli(daemon.socket, "image", "pull", "-q", f"{registry.host}/no/such:1")
            one_line_failure(failed)
            assert run_cli(daemon.socket, "play", "--down", str(manifest), *roots).returncode == 0
        finally:
            daemon.close()
        assert "STOPPING=1" in systemd.recv(4096).decode()
    log = daemon.log_path.read_text()
    assert "Traceback" not in log
    # INFO: one line per state change (the event journal) and per failure; no per-request noise
    for topic in ("/sandboxes/start", "/tasks/start", "/tasks/exit"):
        assert f"pinnaced.state: {topic} " in log, topic
    assert "INFO cri.server: pinnace.images.v1.Images/Pull failed: NOT_FOUND" in log
    assert "HTTP Request:" not in log and " OK in " not in log and " DEBUG " not in log


def test_debug_log_has_rpcs_and_registry_requests(
    tmp_path: Path, registry: Registry, pushed_busybox: str
) -> None:
    daemon = _daemon(tmp_path, registry)  # the harness runs at --log-level debug
    try:
        daemon.start()
        assert run_cli(daemon.socket, "image", "pull", "-q", pushed_busybox).returncode == 0
    finally:
        daemon.close()
    log = daemon.log_path.read_text()
    assert "runtime.v1.RuntimeService/Version OK in" in log
    assert "HTTP Request: GET http://" in log and "/v2/test/busybox/manifests/" in log


def _refused_start(daemon: Pinnaced) -> str:
    """The one line a daemon that must not start printed last (exit code 1, no traceback)."""
    try:
        with pytest.raises(DaemonError):
            daemon.start()
        assert daemon.returncode == 1
        log = daemon.log_path.read_text()
    finally:
        daemon.close()
    assert "Traceback" not in log, log
    return log.rstrip("\n").splitlines()[-1]


def test_a_socket_another_daemon_serves_is_left_to_it(
    pinnaced: PinnacedFactory, tmp_path: Path
) -> None:
    daemon = pinnaced()
    # the root lock cannot see this: the second daemon has a root of its own
    second = Pinnaced(tmp_path / "second", extra_args=("--address", str(daemon.socket)))
    line = _refused_start(second)
    assert line == (
        f"pinnaced: {daemon.socket}: another process serves this socket (a running pinnaced on"
        " another --root, containerd, CRI-O?); stop it or choose another path with --address"
        " or [daemon] address"
    ), line
    # the first daemon keeps its socket: neither taken over nor removed at the second's exit
    assert run_cli(daemon.socket, "version").returncode == 0


def test_a_file_at_the_socket_path_is_never_removed(tmp_path: Path) -> None:
    somebodys = tmp_path / "notes.txt"
    somebodys.write_text("mine\n")
    line = _refused_start(Pinnaced(tmp_path / "d", extra_args=("--address", str(somebodys))))
    assert line.startswith(f"pinnaced: {somebodys} is a regular file, not a socket:"), line
    assert "--address" in line
    assert somebodys.read_text() == "mine\n"


def _children(pid: int) -> list[str]:
    """The command lines of ``pid``'s child processes."""
    lines = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                lines.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" "))
    return [line.decode(errors="replace") for line in lines]


def test_ctrl_c_at_the_terminal_stops_pinnaced_in_order_without_a_traceback(
    tmp_path: Path,
) -> None:
    # own_session: the daemon leads a process group, as a shell's foreground job does; ^C is
    # SIGINT to that whole group, the daemon's helpers included
    daemon = Pinnaced(tmp_path, own_session=True)
    try:
        daemon.start()
        assert daemon.pid is not None
        deadline = time.monotonic() + 30
        while not any("runtime.stats.walker" in c for c in _children(daemon.pid)):
            assert time.monotonic() < deadline, "the layer walker never started"
            time.sleep(0.05)  # polling /proc for a child the daemon starts on its own
        os.killpg(daemon.pid, signal.SIGINT)
        assert daemon.stop(timeout=30) == 0  # already stopping: stop() only waits
        log = daemon.log_path.read_text()
    finally:
        daemon.close()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "shutting down" in log


def _lines_until(stream: IO[bytes], deadline: float) -> Iterator[bytes]:
    """``stream``'s lines until it ends or ``deadline`` (monotonic) passes."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            yield from (line + b"\n" for line in complete)
        if pending:
            yield pending


@pytest.mark.parametrize("imports", [1, 100, 300, 460])
def test_ctrl_c_while_pinnaced_starts_is_exit_130_without_a_traceback(
    tmp_path: Path, imports: int
) -> None:
    # The console script as an operator runs it. ^C lands while Python loads the daemon's ~470
    # modules, before any signal handler of ours exists: after the `imports`-th module that
    # finishes loading past the entry point (-X importtime reports each one as it finishes;
    # Python's own start-up before our first line, site and its .pth files, is not ours).
    script = Path(sys.executable).with_name("pinnaced")
    assert script.exists(), f"{script}: scripts/setup.sh installs the console scripts"
    daemon = Pinnaced(tmp_path)
    argv = [str(script), *daemon.argv()[3:]]  # without "python -m cri.daemon"
    for directory in (daemon.root, daemon.state, daemon.hosts_dir, daemon.cni_conf_dir):
        directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        start_new_session=True,  # a shell's foreground job: ^C is SIGINT to its whole group
    )
    lines: list[bytes] = []
    try:
        assert proc.stdout is not None
        past_entry = -1
        deadline = time.monotonic() + 60
        for line in _lines_until(proc.stdout, deadline):
            lines.append(line)
            if past_entry < 0:
                past_entry = 0 if line.rstrip().endswith(b"| cri.pinnaced") else -1
            elif line.startswith(b"import time:"):
                past_entry += 1
            if past_entry >= imports:
                break
        assert past_entry >= imports, b"".join(lines).decode(errors="replace")
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        daemon.close()
    text = b"".join(lines).decode(errors="replace")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    # interrupted before it served: 130 and one line; one already past its imports may have
    # installed its handlers, and then SIGINT is an orderly stop (0)
    assert proc.returncode in (0, 130), (proc.returncode, text)
    if proc.returncode == 130:
        assert text.rstrip().endswith("pinnaced: interrupted"), text
