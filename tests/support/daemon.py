"""Run a real ``pinnaced`` in temporary directories and talk CRI to it.

Terms:
  root dir     the daemon's persistent data (``--root``), under the test's ``tmp_path``.
  state dir    runtime state (``--state``) and the CRI socket, under a short ``/tmp/pnd-*``
               directory: unix socket paths are limited to 107 bytes and pytest's ``tmp_path``
               can be longer.
  leftovers    processes, mounts and cgroups that outlived the daemon. Containers outlive a
               daemon by design (conmon), so after a kill the harness removes them itself:
               processes whose command line names our root/state dirs and their descendants
               (by PID), mounts under our dirs, then the cgroups those processes lived in and
               the daemon's own pod cgroup root (unique per daemon: derived from its root).

The daemon's command line is the contract with ``cri.daemon``::

    python -m cri.daemon --root R --state S --address unix://SOCK
                         --registry-hosts-dir H --log-level debug [--config C] [extra_args...]
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXEC_HELPER_CACHE = Path(tempfile.gettempdir()) / "pinnace-exec-helper-cache"
_MNT_DETACH = 2
_STARTUP_TIMEOUT = 60.0
_CHANNEL_OPTIONS = (
    # Reconnect quickly while the daemon is still creating its socket.
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


# -- hosts.toml ------------------------------------------------------------------------------
def hosts_toml(
    hosts_dir: Path,
    registry_hostport: str,
    *,
    plain_http: bool,
    ca: Path | None = None,
    skip_verify: bool = False,
    capabilities: Sequence[str] = ("pull", "resolve", "push"),
    mirrors: Sequence[str] = (),
    server: str | None = None,
) -> Path:
    """Write ``hosts_dir/<registry_hostport>/hosts.toml`` in containerd's format.

    ``server`` defaults to ``http(s)://<registry_hostport>``; ``mirrors`` are extra
    ``[host."URL"]`` entries (full URLs) tried before it, in order.
    """
    scheme = "http" if plain_http else "https"
    server = server or f"{scheme}://{registry_hostport}"

    def settings(url: str) -> list[str]:
        out = ["capabilities = [" + ", ".join(f'"{c}"' for c in capabilities) + "]"]
        if ca is not None and url.startswith("https://"):
            out.append(f'ca = "{ca}"')
        if skip_verify:
            out.append("skip_verify = true")
        return out

    # The server's own settings sit at the top level; [host] tables are the mirrors only
    # (a [host] naming the server too would make clients try it twice).
    lines = [f'server = "{server}"', *settings(server), ""]
    for url in mirrors:
        lines.append(f'[host."{url}"]')
        lines.extend(f"  {line}" for line in settings(url))
        lines.append("")
    directory = hosts_dir / registry_hostport
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hosts.toml"
    path.write_text("\n".join(lines))
    return path


# -- CRI clients -----------------------------------------------------------------------------
def cri_channel(socket: Path) -> Any:
    import grpc

    return grpc.insecure_channel(f"unix://{socket}", options=_CHANNEL_OPTIONS)


def cri_clients(socket: Path, *, channel: Any = None) -> tuple[Any, Any]:
    """(RuntimeServiceStub, ImageServiceStub) on a sync gRPC channel to ``socket``."""
    from cri.api.runtime.v1 import api_pb2_grpc

    channel = channel if channel is not None else cri_channel(socket)
    return api_pb2_grpc.RuntimeServiceStub(channel), api_pb2_grpc.ImageServiceStub(channel)


# -- leftovers -------------------------------------------------------------------------------
@dataclass(slots=True)
class Leftovers:
    """What the harness had to clean up after the daemon (empty after a clean shutdown)."""

    processes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts or self.cgroups)


def cgroup_hierarchies() -> list[Path]:
    """The mount point of every cgroup (v1 and v2) hierarchy on this host."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            points.append(Path(_unescape(left.split()[4])))
    return points


def cgroup_dirs_of(cgroup_path: str) -> list[Path]:
    """``cgroup_path`` (like ``/pinnace-ab12``) in every hierarchy where it exists."""
    relative = cgroup_path.strip("/")
    return [h / relative for h in cgroup_hierarchies() if (h / relative).is_dir()]


def remove_cgroup_tree(cgroup_path: str) -> list[str]:
    """rmdir ``cgroup_path`` and everything below it, in every hierarchy (deepest first);
    returns what was removed. Busy cgroups stay (their processes are not ours to end)."""
    removed = []
    for top in cgroup_dirs_of(cgroup_path):
        below = sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for directory in [*below, top]:
            with contextlib.suppress(OSError):
                directory.rmdir()
                removed.append(str(directory))
    return removed


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline joined with spaces) for every visible process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry)] = (ppid, cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return table


def processes_mentioning(markers: Iterable[str]) -> dict[int, str]:
    """Processes whose command line contains one of ``markers``, plus all their descendants,
    ancestors before descendants (so supervisors are killed before they see children die)."""
    markers = [m for m in markers if m]
    table = _proc_table()
    me = os.getpid()
    matched = {
        pid for pid, (_, cmd) in table.items() if pid != me and any(m in cmd for m in markers)
    }
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    roots = sorted(pid for pid in matched if table[pid][0] not in matched)
    order: list[int] = []
    queue = deque(roots)
    while queue:
        pid = queue.popleft()
        if pid in order or pid == me:
            continue
        order.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return {pid: table[pid][1] for pid in order}


def _cgroup_dirs(pid: int) -> list[Path]:
    """The cgroup directories ``pid`` is in, on every hierarchy mounted here."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    mounts: list[tuple[str, set[str], str]] = []  # (fstype, super options, mount point)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, super_options = right.split(" ", 2)
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, set(super_options.split(",")), _unescape(left.split()[4])))
    out = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for fstype, options, point in mounts:
            if (not controllers and fstype == "cgroup2") or (
                controllers and fstype == "cgroup" and set(controllers.split(",")) <= options
            ):
                out.append(Path(point + path))
    return out


def _thaw(directory: Path) -> None:
    with contextlib.suppress(OSError):
        if (directory / "freezer.state").exists():
            (directory / "freezer.state").write_text("THAWED")
        elif (directory / "cgroup.freeze").exists():
            (directory / "cgroup.freeze").write_text("0")


def _wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait for processes (not necessarily our children) to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                alive.append(pid)
        finally:
            os.close(fd)
    return alive


def mounts_under(directories: Iterable[Path]) -> list[str]:
    """Mount points below any of ``directories``, deepest first."""
    prefixes = [str(d.resolve()) for d in directories if d.exists()]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _unescape(field_: str) -> str:
    return (
        field_.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
        .replace("\\134", "\\")
    )  # fmt: skip


def _umount(point: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(point.encode(), _MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno), point)


def clean_leftovers(directories: Sequence[Path], *, timeout: float = 10.0) -> Leftovers:
    """Kill (by PID) processes started for ``directories``, unmount what is mounted below them
    and remove the cgroups those processes were in. Returns what it found."""
    found = Leftovers()
    processes = processes_mentioning(str(d) for d in directories)
    own_cgroups = set(_cgroup_dirs(os.getpid()))
    cgroups: set[Path] = set()
    for pid, cmd in processes.items():
        found.processes.append(f"{pid} {cmd[:200]}")
        cgroups.update(c for c in _cgroup_dirs(pid) if c not in own_cgroups)
    for directory in cgroups:
        _thaw(directory)
    for pid in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Our own children (the daemon) are not reaped here: their Popen objects do that, and
    # reaping behind Popen's back would lose the exit status. pidfds report exit, not reaping.
    _wait_gone(processes, timeout)
    for point in mounts_under(directories):
        found.mounts.append(point)
        with contextlib.suppress(OSError):
            _umount(point)
    for directory in sorted(cgroups, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
            found.cgroups.append(str(directory))
    return found


# -- the daemon ------------------------------------------------------------------------------
# cri/loopwatch.py's line: time held (the threshold applies to it), wall time, what it was
_SLOW_CALLBACK = re.compile(
    r"WARNING cri\.loopwatch: slow callback: held the loop (\d+) ms \(wall (\d+) ms, "
    r"(\d+) ms waiting for a CPU, (\d+) ms spawning\): (.*)"
)


@dataclass(frozen=True)
class SlowCallback:
    """One callback that held a daemon's event loop: for how long (less the time its thread
    waited for a CPU), its wall time, and what it was."""

    held_ms: int
    wall_ms: int
    what: str

    def __str__(self) -> str:
        return f"held {self.held_ms} ms (wall {self.wall_ms} ms): {self.what}"


class DaemonError(RuntimeError):
    """pinnaced did not start, or did not stop when asked."""


class Pinnaced:
    """A pinnaced process we own by PID, with its own root, state, socket and log file."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        registry_hosts_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        config_text: str | None = None,
        env: dict[str, str] | None = None,
        slow_callback_ms: int = 0,
        own_session: bool = False,
        source_root: Path = REPO_ROOT,
    ) -> None:
        self.tmp_path = tmp_path
        # the tree whose ``cri`` and ``runtime`` packages the daemon runs (benchmarks run an
        # older checkout beside this one to compare them)
        self.source_root = source_root
        # True: the daemon runs in a session of its own, so a Ctrl-C at the terminal that
        # started it (SIGINT to the foreground process group) does not reach it
        self.own_session = own_session
        # > 0: the daemon runs its loop in asyncio debug mode and logs every callback that
        # holds the loop longer than this; ``slow_callbacks()`` reads them from the log
        self.slow_callback_ms = slow_callback_ms
        self.root = tmp_path / "root"
        self.short_dir = Path(tempfile.mkdtemp(prefix="pnd-", dir="/tmp"))
        self.state = self.short_dir / "state"
        self.socket = self.short_dir / "pinnace.sock"
        self.hosts_dir = registry_hosts_dir or tmp_path / "certs.d"
        # The node's CNI configs are never used by tests: each daemon has its own (empty
        # until a test writes a conflist there), and the plugins from Debian's package.
        self.cni_conf_dir = tmp_path / "net.d"
        # Likewise the node's CDI specs: each daemon reads only its own directory.
        self.cdi_dir = tmp_path / "cdi"
        # NRI: a socket of its own (never the node's /var/run/nri/nri.sock), and plugin and
        # drop-in directories a test may fill before start().
        self.nri_socket = self.short_dir / "nri.sock"
        self.nri_plugin_dir = tmp_path / "nri-plugins"
        self.nri_config_dir = tmp_path / "nri-conf.d"
        self.log_path = tmp_path / "pinnaced.log"
        self.config_path: Path | None = None
        if config_text is not None:
            self.config_path = tmp_path / "config.toml"
            self.config_path.write_text(config_text)
        self.extra_args = tuple(extra_args)
        self.env = env
        self.leftovers = Leftovers()
        # the daemon derives its pods' cgroup root from --root unless its config names one
        from cri.config import default_cgroup_root

        self.cgroup_root = default_cgroup_root(self.root)
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: Any = None
        self._stubs: tuple[Any, Any] | None = None
        self._closed = False

    def argv(self) -> list[str]:
        args = [
            sys.executable, "-m", "cri.daemon",
            "--root", str(self.root),
            "--state", str(self.state),
            "--address", f"unix://{self.socket}",
            "--registry-hosts-dir", str(self.hosts_dir),
            "--cni-conf-dir", str(self.cni_conf_dir),
            "--cni-bin-dir", "/usr/lib/cni",
            "--cdi-spec-dir", str(self.cdi_dir),
            "--nri-socket", str(self.nri_socket),
            "--nri-plugin-dir", str(self.nri_plugin_dir),
            "--nri-config-dir", str(self.nri_config_dir),
            "--log-level", "debug",
        ]  # fmt: skip
        if "--exec-helper-dir" in (self.source_root / "cri" / "daemon.py").read_text():
            # one build of pinnace-exec for every test daemon (named by its source's hash);
            # an older checkout (benchmarks) has no such flag
            args += ["--exec-helper-dir", str(EXEC_HELPER_CACHE)]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        if self.slow_callback_ms > 0:
            args += ["--slow-callback-ms", str(self.slow_callback_ms)]
        return args + list(self.extra_args)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, *, timeout: float = _STARTUP_TIMEOUT) -> Pinnaced:
        """Start the daemon; return once a ``Version`` RPC succeeds on its socket."""
        if self.running:
            raise DaemonError("pinnaced is already running")
        for directory in (self.root, self.state, self.hosts_dir, self.cni_conf_dir):
            directory.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.source_root), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONUNBUFFERED", "1")
        with self.log_path.open("ab") as log:
            log.write(f"==== start {' '.join(self.argv())}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.tmp_path,
                env=env,
                start_new_session=self.own_session,
            )
        try:
            self._await_ready(timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                self.kill()
            raise
        return self

    def _await_ready(self, timeout: float) -> None:
        import grpc

        from cri.api.runtime.v1 import api_pb2

        self._channel = cri_channel(self.socket)
        self._stubs = cri_clients(self.socket, channel=self._channel)
        runtime = self._stubs[0]
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise DaemonError(
                    f"pinnaced exited with {self._proc.returncode} during startup; log tail:\n"
                    + self.log_tail(60)
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DaemonError(
                    f"pinnaced not ready within {timeout}s ({last_error}); log tail:\n"
                    + self.log_tail(60)
                )
            try:
                # The short per-attempt deadline lets us notice a daemon that died meanwhile.
                runtime.Version(
                    api_pb2.VersionRequest(version="v1"),
                    timeout=min(remaining, 1.0),
                    wait_for_ready=True,
                )
                return
            except grpc.RpcError as error:
                last_error = error

    def clients(self) -> tuple[Any, Any]:
        """(runtime, image) stubs on the daemon's channel (valid until stop/restart)."""
        if self._stubs is None:
            raise DaemonError("pinnaced is not started")
        return self._stubs

    @property
    def runtime(self) -> Any:
        return self.clients()[0]

    @property
    def image(self) -> Any:
        return self.clients()[1]

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stubs = None

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; SIGKILL and raise DaemonError if it takes longer
        than ``timeout``. Returns the exit status (negative: killed by that signal)."""
        self._close_channel()
        proc = self._proc
        if proc is None:
            raise DaemonError("pinnaced was never started")
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise DaemonError(
                    f"pinnaced ignored signal {sig} for {timeout}s; log tail:\n" + self.log_tail()
                ) from None
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL the daemon (containers and conmon stay, as after a crash)."""
        return self.stop(signal.SIGKILL, timeout=30.0)

    def restart(self, *, timeout: float = _STARTUP_TIMEOUT) -> Pinnaced:
        """Stop (SIGTERM) if running, then start again on the same dirs."""
        if self.running:
            self.stop()
        return self.start(timeout=timeout)

    def close(self) -> Leftovers:
        """Teardown: stop the daemon (SIGTERM, then SIGKILL), remove leftovers and temp dirs."""
        if self._closed:
            return self.leftovers
        self._closed = True
        self._close_channel()
        if self.running:
            with contextlib.suppress(DaemonError):
                self.stop(timeout=20.0)
        self.leftovers = clean_leftovers([self.root, self.short_dir])
        self.leftovers.cgroups.extend(remove_cgroup_tree(self.cgroup_root))
        shutil.rmtree(self.short_dir, ignore_errors=True)
        return self.leftovers

    def __enter__(self) -> Pinnaced:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- logs --------------------------------------------------------------------------------
    def slow_callbacks(self) -> list[SlowCallback]:
        """Every callback the daemon's loop reported as holding it longer than
        ``slow_callback_ms`` (the lines :mod:`cri.loopwatch` logs)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [
            SlowCallback(held_ms=int(m.group(1)), wall_ms=int(m.group(2)), what=m.group(5))
            for m in _SLOW_CALLBACK.finditer(text)
        ]

    def log_tail(self, lines: int = 100) -> str:
        try:
            with self.log_path.open("rb") as f:
                tail = deque(f, maxlen=lines)
        except FileNotFoundError:
            return "(no log)"
        return b"".join(tail).decode(errors="replace")
