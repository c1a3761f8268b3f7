"""pinnaced: the composition root. Reads the config, builds every component once, serves the
CRI on the unix socket, and shuts down in order on SIGTERM/SIGINT.

Nothing else in pinnace constructs services; constructors below do no I/O, and ``Daemon.run``
does the I/O in the order that makes a crash at any point recoverable: lock the root, open
metadata, clean what an earlier crash left, then listen.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import fcntl
import functools
import grp
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from cri import config as config_mod
from cri import loopwatch, unixsocket
from cri.api.pinnace.events.v1 import events_pb2_grpc
from cri.api.pinnace.images.v1 import images_pb2_grpc
from cri.api.runtime.v1 import api_pb2_grpc as pb_grpc
from cri.config import Config, SnapshotterChoice
from cri.metrics import Metrics
from cri.notify import Notifier
from cri.nri.adaptation import Adaptation, NriSettings
from cri.nri.view import PodServiceView
from cri.observe import Observer
from cri.rpc import events as events_rpc
from cri.rpc import pinnace_images
from cri.rpc.deps import Deps
from cri.server import build_server
from cri.servicers import ImageServicer, RuntimeServicer
from cri.streaming.server import StreamingServer
from runtime import cgroups
from runtime.cdi import CdiRegistry
from runtime.cgroups import CgroupMode, CgroupMounts
from runtime.cgroups import host as cgroups_host
from runtime.cgroups.host import HostResources
from runtime.content.local import LocalStore
from runtime.distribution.auth import Credentials, make_credentials
from runtime.distribution.client import RegistryClient
from runtime.errors import FailedPrecondition, InvalidArgument, PinnaceError
from runtime.events.exchange import Exchange
from runtime.events.journal import EventJournal
from runtime.images.gc import Collector
from runtime.images.platforms import default_platform, parse_platform
from runtime.images.pull import Puller
from runtime.images.service import ImageService, credentials_lookup
from runtime.images.store import ImageStore
from runtime.images.unpack import Unpacker
from runtime.metadata.db import Database
from runtime.model.pods import ContainerState, SandboxState
from runtime.mount import idmap
from runtime.network.manager import NetworkManager
from runtime.oci import lsm
from runtime.pods import rootfs as rootfs_mod
from runtime.pods.containers import ContainerController
from runtime.pods.network import EventNetwork
from runtime.pods.sandboxes import SandboxController
from runtime.pods.service import PodService
from runtime.pods.settings import PodSettings
from runtime.pods.store import PodStore
from runtime.sandbox.dial import NamespaceDialer
from runtime.snapshots.base import DirectorySnapshotter
from runtime.snapshots.events import PublishingSnapshotter
from runtime.snapshots.interfaces import Snapshotter
from runtime.snapshots.native import NativeSnapshotter
from runtime.snapshots.overlay import OverlaySnapshotter
from runtime.stats.layers import WritableLayers
from runtime.tasks.features import HandlerFeatures, probe_features
from runtime.tasks.interfaces import RuntimeHandler
from runtime.tasks.manager import TaskManager

log = logging.getLogger("pinnaced")


@functools.cache
def pinnace_version() -> str:
    """The installed distribution's version, from its ``pinnace-<version>.dist-info`` directory
    name on ``sys.path`` (what ``importlib.metadata.version`` finds, without the ~12 ms its
    import added to every start); ``0.0.0+source`` when pinnace is not installed."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith("pinnace-") and name.endswith(".dist-info"):
                return name[len("pinnace-") : -len(".dist-info")]
    return "0.0.0+source"


class RootLock:
    """An exclusive lock on the root directory, so two daemons never share one store."""

    def __init__(self, root: Path) -> None:
        self._path = root / "pinnaced.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self._path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise FailedPrecondition(
                f"another pinnaced (pid {holder}) is already using root {self._path.parent}; "
                "stop it, or give this one its own --root and --state"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _process_age() -> float:
    """Seconds since this process was started (its exec, interpreter start and imports by the
    time ``main`` runs); 0.0 where ``/proc`` does not say."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)


class StartupClock:
    """How long each step of the start took, logged as one line once the CRI is served (where
    a slow restart's time went, without a profiler)."""

    def __init__(self, *, since_exec: float = 0.0) -> None:
        self._steps = [("exec+imports+config", since_exec)] if since_exec else []
        self._last = time.monotonic()

    def lap(self, step: str) -> None:
        now = time.monotonic()
        self._steps.append((step, now - self._last))
        self._last = now

    def summary(self) -> str:
        total = sum(took for _, took in self._steps)
        parts = ", ".join(f"{step} {took * 1e3:.0f}" for step, took in self._steps)
        return f"{total * 1e3:.0f} ms ({parts})"


def _configured_credentials(cfg: Config) -> dict[str, Credentials]:
    out: dict[str, Credentials] = {}
    for host, auth in cfg.images.registry_auths.items():
        creds = make_credentials(
            username=auth.username,
            password=auth.password,
            auth=auth.auth,
            identity_token=auth.identity_token,
        )
        if creds is not None:
            out[host] = creds
    return out


class Daemon:
    """Everything pinnaced runs, built from one Config."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.notifier = Notifier("")  # main() hands it systemd's socket, if any
        # main() hands it the loop watch's off switch when --slow-callback-ms is set
        self.stop_loop_watch: Callable[[], None] = lambda: None
        root = cfg.daemon.root
        self.lock = RootLock(root)
        self.metrics = Metrics()
        self.db = Database(root / "metadata.db")
        self.content = LocalStore(root / "content")
        self.image_store = ImageStore(self.db)
        configured = _configured_credentials(cfg)
        hosts_dir = cfg.images.registry_hosts_dir
        user_agent = f"pinnace/{pinnace_version()}"

        # One client (and so one set of connection pools) for the daemon; each request gets a
        # view of it with that request's credentials.
        self.registry = RegistryClient(
            hosts_dir, credentials_for=configured.get, user_agent=user_agent
        )

        self._configured = configured
        self.exchange = Exchange()
        self.pod_store = PodStore(self.db)
        handlers = {
            name: RuntimeHandler(
                name=name,
                binary=handler.binary,
                root=handler.root or cfg.daemon.state / "runtimes" / name,
            )
            for name, handler in cfg.runtime.handlers.items()
        }
        self.tasks = TaskManager(
            cfg.daemon.state,
            handlers,
            cfg.runtime.conmon,
            exec_helper_dir=(
                (cfg.runtime.exec_helper_dir or cfg.daemon.root / "bin")
                if cfg.runtime.exec_helper
                else None
            ),
        )
        self.network = NetworkManager(
            self.exchange,
            conf_dir=cfg.network.cni_conf_dir,
            bin_dirs=cfg.network.cni_bin_dirs,
            cache_dir=cfg.network.cni_cache_dir or cfg.daemon.root / "cni",
            plugin_timeout=cfg.network.plugin_timeout,
        )
        self.cdi = CdiRegistry(cfg.cdi.spec_dirs)
        self.nri: Adaptation | None = None
        if cfg.nri.enable:
            nri = cfg.nri
            self.nri = Adaptation(
                NriSettings(
                    runtime_name="pinnace",
                    runtime_version=pinnace_version(),
                    socket_path=None if nri.disable_connections else nri.socket_path,
                    plugin_path=nri.plugin_path,
                    plugin_config_path=nri.plugin_config_path,
                    registration_timeout=nri.plugin_registration_timeout,
                    request_timeout=nri.plugin_request_timeout,
                ),
                cdi=self.cdi,
                record=self.metrics.record_nri,
            )
        self._stop = asyncio.Event()
        self.clock = StartupClock()  # main() gives it the time the process took to get here

    def _build_images(self, snapshotter: Snapshotter) -> ImageService:
        """The image layer; built once the snapshotter is chosen (that probes the kernel)."""
        base = snapshotter.inner if isinstance(snapshotter, PublishingSnapshotter) else snapshotter
        cfg = self.cfg
        root = cfg.daemon.root
        configured = self._configured
        collector = Collector(
            content=self.content, snapshotter=snapshotter, images=self.image_store
        )
        platform = (
            parse_platform(cfg.images.platform) if cfg.images.platform else default_platform()
        )
        unpacker = Unpacker(
            content=self.content,
            snapshotter=snapshotter,
            max_concurrent=cfg.images.max_concurrent_downloads,
            progress_timeout=cfg.images.pull_progress_timeout,
        )
        puller = Puller(
            content=self.content,
            images=self.image_store,
            unpacker=unpacker,
            platform=platform,
            progress_timeout=cfg.images.pull_progress_timeout,
        )

        def client_factory(creds: Credentials | None, host: str | None) -> RegistryClient:
            return self.registry.with_credentials(credentials_lookup(configured, creds, host))

        return ImageService(
            content=self.content,
            snapshotter=snapshotter,
            images=self.image_store,
            puller=puller,
            collector=collector,
            client_factory=client_factory,
            store_dirs=(root / "content", root / "snapshots"),
            pinned_images=(cfg.images.sandbox_image,),
            fs_id=base.root if isinstance(base, DirectorySnapshotter) else None,
            exchange=self.exchange,
        )

    def _build_pods(
        self,
        cgroup_mounts: CgroupMounts,
        host_resources: HostResources,
        images: ImageService,
        snapshotter: Snapshotter,
        handler_features: Mapping[str, HandlerFeatures],
        security_modules: lsm.HostSecurityModules,
    ) -> PodService:
        """The pod layer; built once the cgroup hierarchy is known (that is I/O)."""
        cfg = self.cfg
        settings = PodSettings(
            state_dir=cfg.daemon.state,
            sandbox_image=cfg.images.sandbox_image,
            default_handler=cfg.runtime.default_handler,
            handlers=tuple(sorted(cfg.runtime.handlers)),
            shm_size=cfg.runtime.shm_size,
            always_infra=cfg.runtime.always_infra,
            cgroup_driver=cfg.runtime.cgroup_driver,
            default_cgroup_parent=config_mod.pod_cgroup_root(cfg),
            cgroup_v2=cgroup_mounts.mode == CgroupMode.UNIFIED,
            host_resources=host_resources,
            tolerate_missing_hugetlb_controller=cfg.runtime.tolerate_missing_hugetlb_controller,
            handler_features=handler_features,
            security_modules=security_modules,
        )
        network = EventNetwork(self.exchange, timeout=cfg.network.setup_timeout)
        sandboxes = SandboxController(
            store=self.pod_store,
            tasks=self.tasks,
            images=images,
            snapshotter=snapshotter,
            exchange=self.exchange,
            settings=settings,
            cgroups=cgroup_mounts,
            network=network,
            hooks=self.nri,
        )
        containers = ContainerController(
            store=self.pod_store,
            tasks=self.tasks,
            images=images,
            snapshotter=snapshotter,
            exchange=self.exchange,
            settings=settings,
            sandboxes=sandboxes,
            cgroups=cgroup_mounts,
            cdi=self.cdi,
            hooks=self.nri,
        )
        self.tasks.on_exit(containers.on_exit)
        layers = WritableLayers(
            source=containers.layer_keys,
            locate=containers.writable_dir,
            interval=cfg.stats.layer_refresh_interval,
            file_budget=cfg.stats.layer_file_budget,
        )
        return PodService(
            store=self.pod_store,
            tasks=self.tasks,
            sandboxes=sandboxes,
            containers=containers,
            layers=layers,
        )

    async def _probe_handlers(self, cfg: Config) -> dict[str, HandlerFeatures]:
        """Each handler's OCI runtime's ``features``, asked once at start."""
        names = sorted(cfg.runtime.handlers)
        found = await asyncio.gather(
            *(probe_features(cfg.runtime.handlers[n].binary) for n in names)
        )
        for name, features in zip(names, found, strict=True):
            log.info(
                "runtime handler %s: recursive read-only mounts %s, user namespace %s",
                name,
                "supported" if features.recursive_read_only else "not supported",
                "stated" if "user" in features.namespaces else "not stated",
            )
        return dict(zip(names, found, strict=True))

    def _choose_snapshotter(self, base: Path) -> Snapshotter:
        kind = self.cfg.images.snapshotter
        if kind in (SnapshotterChoice.OVERLAY, SnapshotterChoice.AUTO):
            ok, reason = OverlaySnapshotter.supported(base)
            if ok:
                return OverlaySnapshotter(base / "overlay")
            if kind == SnapshotterChoice.OVERLAY:
                raise FailedPrecondition(
                    f"overlay snapshotter unavailable under {base}: {reason}; set "
                    'images.snapshotter = "native" (or "auto") to use the copying one'
                )
            log.warning("overlayfs unavailable (%s); using the native snapshotter", reason)
        return NativeSnapshotter(base / "native")

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cfg = self.cfg
        self.lock.acquire()
        try:
            await self._serve(cfg)
        finally:
            self.lock.release()

    async def _serve(self, cfg: Config) -> None:
        cfg.daemon.state.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.db.open)
        self.clock.lap("db")
        if self.db.damage is not None:
            # what was lost is reported here; what it leaves on the node, recovery removes
            log.warning("%s", self.db.damage.summary())
        try:
            async with self.tasks, self.network:
                await self._serve_with_tasks(cfg)
        finally:
            await self.registry.aclose()
            await asyncio.to_thread(self.metrics.close)  # shutdown() waits out a 0.5 s poll
            await asyncio.to_thread(self.db.close)

    async def _open_snapshots(self, cfg: Config) -> Snapshotter:
        await asyncio.to_thread(self.image_store.load)
        snapshotter = await asyncio.to_thread(
            self._choose_snapshotter, cfg.daemon.root / "snapshots"
        )
        await asyncio.to_thread(snapshotter.cleanup)
        return snapshotter

    async def _probe_cgroups(self) -> tuple[CgroupMounts, HostResources]:
        cgroup_mounts = await asyncio.to_thread(cgroups.detect)
        host_resources = await asyncio.to_thread(cgroups_host.detect, cgroup_mounts)
        log.info("resource controls this node applies: %s", host_resources)
        return cgroup_mounts, host_resources

    async def _serve_with_tasks(self, cfg: Config) -> None:
        # independent of each other (files, the kernel, `runc features`, sqlite): side by side
        (
            opened,
            (cgroup_mounts, host_resources),
            handler_features,
            security_modules,
            _,
        ) = await asyncio.gather(
            self._open_snapshots(cfg),
            self._probe_cgroups(),
            self._probe_handlers(cfg),
            asyncio.to_thread(lsm.detect),
            # the pod records (sqlite rows → dataclasses), for recovery below
            asyncio.to_thread(self.pod_store.load),
        )
        self.clock.lap("images+snapshots, cgroups, runtime features, lsm, pod records")
        # prepares, commits and removes are published on the exchange from here on
        snapshotter = PublishingSnapshotter(opened, self.exchange)
        images = self._build_images(snapshotter)
        inner = snapshotter.inner
        if not isinstance(inner, OverlaySnapshotter):
            # an id-mapped root file system is an overlay over id-mapped layers; the copying
            # snapshotter's rootfs is one plain directory that nothing can id-map
            why = (
                "the native (copying) snapshotter cannot id-map a root file system; "
                'set images.snapshotter = "overlay"'
            )
            log.info("pods in their own user namespace unavailable: %s", why)
            handler_features = {
                name: dataclasses.replace(f, host_idmapped_why=why)
                for name, f in handler_features.items()
            }
        else:
            # pods in their own user namespace: the layers id-mapped where they live
            idmap_ok, why = await asyncio.to_thread(idmap.supported, cfg.daemon.root / "snapshots")
            if idmap_ok:
                # runc mounts the rootfs from inside the pod's user namespace, by path
                try:
                    await asyncio.to_thread(
                        rootfs_mod.check_traversable, cfg.daemon.state / "sandboxes" / "x"
                    )
                except FailedPrecondition as exc:
                    idmap_ok, why = False, str(exc)
            if not idmap_ok:
                log.info("pods in their own user namespace unavailable: %s", why)
            handler_features = {
                name: dataclasses.replace(f, host_idmapped_mounts=idmap_ok, host_idmapped_why=why)
                for name, f in handler_features.items()
            }
        self.clock.lap("idmap")
        log.info("security modules enabled on this host: %s", security_modules)
        pods = self._build_pods(
            cgroup_mounts, host_resources, images, snapshotter, handler_features, security_modules
        )
        if pods.layers is not None:
            images.set_writable_usage(pods.layers.total)
        await pods.recover(
            records_loaded=True, lap=lambda step: self.clock.lap(f"recovery: {step}")
        )
        if self.nri is not None:  # plugins synchronize with the recovered pods
            self.nri.bind(PodServiceView(pods))
            await self.nri.start()
            self.clock.lap("nri")
        try:
            await images.collect(startup=True)
            self.clock.lap("gc")
            self.metrics.images.set(len(self.image_store.list()))
            streaming = StreamingServer(
                cfg.streaming,
                containers=pods.containers,
                dialer=NamespaceDialer(),
                state_dir=cfg.daemon.state,
            )
            async with streaming:
                await self._serve_with_streaming(cfg, images, pods, streaming, handler_features)
        finally:
            if self.nri is not None:  # after the CRI stopped: no hook is in flight
                await self.nri.aclose()

    async def _serve_with_streaming(
        self,
        cfg: Config,
        images: ImageService,
        pods: PodService,
        streaming: StreamingServer,
        handler_features: Mapping[str, HandlerFeatures],
    ) -> None:
        deps = Deps(
            config=cfg,
            metrics=self.metrics,
            images=images,
            pods=pods,
            network=self.network,
            exchange=self.exchange,
            version=pinnace_version(),
            cdi=self.cdi,
            streaming=streaming,
            handler_features=handler_features,
            nri=self.nri,
        )
        if cfg.metrics.address:
            self.metrics.serve(cfg.metrics.address)
        assert pods.layers is not None
        observer = Observer(self.metrics.registry, self.exchange, lambda: state_counts(pods))
        async with (
            pods.layers,
            EventJournal(self.exchange, logging.getLogger("pinnaced.state")),
            observer,
        ):
            await self._serve_rpcs(cfg, deps)

    async def _serve_rpcs(self, cfg: Config, deps: Deps) -> None:
        server = build_server(self.metrics)
        pb_grpc.add_RuntimeServiceServicer_to_server(RuntimeServicer(deps), server)
        pb_grpc.add_ImageServiceServicer_to_server(ImageServicer(deps), server)
        images_pb2_grpc.add_ImagesServicer_to_server(pinnace_images.servicer(deps), server)
        events_pb2_grpc.add_EventsServicer_to_server(events_rpc.servicer(self.exchange), server)
        sock = cfg.daemon.socket_path
        # an unknown group fails the start here, before anything listens
        socket_gid = _group_id(cfg.daemon.socket_group) if cfg.daemon.socket_group else None
        # the root lock says nothing about the socket: another daemon may serve it
        await unixsocket.prepare(sock, setting="--address or [daemon] address")
        server.add_insecure_port(f"unix://{sock}")
        await server.start()
        claim = unixsocket.claimed(sock)
        os.chmod(sock, cfg.daemon.socket_mode)
        if socket_gid is not None:
            os.chown(sock, -1, socket_gid)
        self.clock.lap("listen")
        log.info(
            "pinnaced %s ready on unix://%s after %s",
            pinnace_version(),
            sock,
            self.clock.summary(),
        )
        self.notifier.notify(
            "READY=1", f"STATUS=serving the CRI on unix://{sock}", f"MAINPID={os.getpid()}"
        )
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            # The loop watch judges serving; gRPC's server shutdown and the components'
            # teardown do their (bounded) work on the loop by design.
            self.stop_loop_watch()
            self.notifier.notify("STOPPING=1")
            self.exchange.close()  # ends Subscribe streams instead of waiting out the grace
            await server.stop(grace=5)
            claim.release()  # only our own socket, not one a successor bound since


def state_counts(pods: PodService) -> dict[str, dict[str, int]]:
    """Pods and containers by state, every state present (for ``pinnace_pods`` and
    ``pinnace_containers``)."""
    sandboxes = {s.value: 0 for s in SandboxState}
    for sandbox in pods.list_sandboxes():
        sandboxes[sandbox.state.value] += 1
    containers = {s.value: 0 for s in ContainerState}
    for container in pods.list_containers():
        containers[container.state.value] += 1
    return {"pods": sandboxes, "containers": containers}


def _group_id(group: str) -> int:
    """The gid of ``daemon.socket_group`` (a name from the group database, or a number)."""
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise InvalidArgument(
            f"daemon.socket_group: no group {group!r} on this host; create it or name another"
        ) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pinnaced", description="pinnace: a Kubernetes container runtime (CRI) daemon"
    )
    parser.add_argument(
        "--config", type=Path, help="config file (default /etc/pinnace/config.toml)"
    )
    parser.add_argument("--root", type=Path, help="persistent state (default /var/lib/pinnace)")
    parser.add_argument("--state", type=Path, help="runtime state (default /run/pinnace)")
    parser.add_argument("--version", action="version", version=f"pinnaced {pinnace_version()}")
    parser.add_argument(
        "--address", help="socket to serve the CRI on: unix:///path/to/socket or /path/to/socket"
    )
    parser.add_argument("--registry-hosts-dir", type=Path, help="hosts.toml directories")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--metrics-address", help="host:port for Prometheus /metrics")
    parser.add_argument(
        "--stream-address", help="streaming server (exec/attach/port-forward) listen address"
    )
    parser.add_argument("--stream-port", type=int, help="streaming server port (0: any free)")
    parser.add_argument("--stream-tls-cert", type=Path, help="streaming server TLS certificate")
    parser.add_argument("--stream-tls-key", type=Path, help="streaming server TLS key")
    parser.add_argument(
        "--stream-tls-self-signed",
        action="store_true",
        default=None,
        help="serve streaming over TLS with a key pair made at start",
    )
    parser.add_argument(
        "--stream-idle-timeout",
        help="close a streaming connection with no streams after this long (e.g. 4h)",
    )
    parser.add_argument(
        "--slow-callback-ms",
        type=int,
        help="asyncio debug mode: log callbacks that hold the event loop longer than this",
    )
    parser.add_argument("--cni-conf-dir", type=Path, help="CNI network configs directory")
    parser.add_argument("--nri-socket", type=Path, help="NRI socket plugins connect to")
    parser.add_argument(
        "--exec-helper-dir", type=Path, help="where pinnace-exec is compiled (a cache)"
    )
    parser.add_argument("--nri-plugin-dir", type=Path, help="pre-installed NRI plugins")
    parser.add_argument("--nri-config-dir", type=Path, help="NRI plugins' drop-in configs")
    parser.add_argument(
        "--cdi-spec-dir",
        type=Path,
        action="append",
        help="CDI spec directory (repeat for several; later ones have priority)",
    )
    parser.add_argument(
        "--cni-bin-dir",
        type=Path,
        action="append",
        help="CNI plugin directory (repeat for several, searched in order)",
    )
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> Config:
    explicit = args.config is not None
    cfg = config_mod.load(args.config or config_mod.DEFAULT_CONFIG_PATH, required=explicit)
    return config_mod.with_overrides(
        cfg,
        daemon__root=args.root,
        daemon__state=args.state,
        daemon__address=args.address,
        daemon__log_level=args.log_level,
        daemon__slow_callback_ms=args.slow_callback_ms,
        images__registry_hosts_dir=args.registry_hosts_dir,
        metrics__address=args.metrics_address,
        streaming__address=args.stream_address,
        streaming__port=args.stream_port,
        streaming__tls_cert=args.stream_tls_cert,
        streaming__tls_key=args.stream_tls_key,
        streaming__tls_self_signed=args.stream_tls_self_signed,
        streaming__idle_timeout=(
            config_mod.parse_duration(args.stream_idle_timeout, key="--stream-idle-timeout")
            if args.stream_idle_timeout
            else None
        ),
        network__cni_conf_dir=args.cni_conf_dir,
        network__cni_bin_dirs=tuple(args.cni_bin_dir) if args.cni_bin_dir else None,
        cdi__spec_dirs=tuple(args.cdi_spec_dir) if args.cdi_spec_dir else None,
        nri__socket_path=args.nri_socket,
        nri__plugin_path=args.nri_plugin_dir,
        nri__plugin_config_path=args.nri_config_dir,
        runtime__exec_helper_dir=args.exec_helper_dir,
    )


def _watch_children_with_pidfds(loop: asyncio.AbstractEventLoop) -> None:
    """Await runc, conmon and CNI plugin exits through pidfds on the loop.

    Python 3.11's default child watcher starts a thread per subprocess to block in waitpid;
    that thread's start and wake-up were ~10% of ExecSync's time in the daemon (py-spy). 3.12
    uses pidfds by itself (and deprecates choosing a watcher), so this is for 3.11 only. Every
    asyncio subprocess of pinnaced is started from this loop, which the watcher requires."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.set_child_watcher(watcher)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
    except InvalidArgument as exc:
        print(f"pinnaced: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(cfg.daemon.log_level)
    daemon = Daemon(cfg)
    daemon.clock = StartupClock(since_exec=_process_age())
    daemon.notifier = Notifier.take(os.environ)  # before any runc or conmon inherits it

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        _watch_children_with_pidfds(loop)
        if cfg.daemon.slow_callback_ms > 0:
            daemon.stop_loop_watch = loopwatch.install(
                loop, threshold_ms=cfg.daemon.slow_callback_ms
            )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    try:
        asyncio.run(serve())
    except PinnaceError as exc:
        print(f"pinnaced: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a listener that cannot bind, a directory it cannot make
        print(f"pinnaced: {exc}", file=sys.stderr)
        return 1
    return 0


#: What each ``--log-level`` means. INFO: one line per state change (the event journal), per
#: failed RPC and per daemon step. DEBUG adds one line per RPC (method, status, duration) and per
#: registry request (httpx's request log). Libraries below that are quiet unless they warn.
_LIBRARY_LEVELS = {
    "debug": {"httpx": logging.INFO, "httpcore": logging.WARNING, "grpc": logging.INFO},
    "info": {"httpx": logging.WARNING, "httpcore": logging.WARNING, "grpc": logging.WARNING},
}


# pinnaced's log lines (tests/support/daemon.py parses the loop watch's from them)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=LOG_FORMAT,
        force=True,
    )
    libraries = _LIBRARY_LEVELS.get(level, _LIBRARY_LEVELS["info"])
    for name, library_level in {**libraries, "asyncio": logging.WARNING}.items():
        logging.getLogger(name).setLevel(max(library_level, logging.getLogger().level))


if __name__ == "__main__":
    sys.exit(main())
