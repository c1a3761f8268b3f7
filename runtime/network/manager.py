"""The network manager: the event subscriber that attaches pod network namespaces with CNI.

Protocol on the exchange (all in the namespace of the triggering event):

``/sandboxes/netns-created`` → CNI ADD → ``/network/attached`` or ``/network/failed`` (op ADD)
``/sandboxes/netns-removing`` → CNI DEL → ``/network/detached`` or ``/network/failed`` (op DEL)

Each event is handled in its own task, so one pod's slow plugin never delays another pod; a
per-sandbox lock keeps ADD and DEL of the same pod in the order they were published.

Config reloading: the conf dir is re-read when its *signature* — the names, sizes and mtimes
of its config files and the directory's own mtime — changes. The signature is taken (a few
``stat`` calls, no reads) whenever ``status()`` is asked (kubelet asks every few seconds) and
before every ADD. That needs no inotify, works when the conf dir appears only later (a CNI
DaemonSet writing it) and keeps ``status()`` free of waiting on anything but local stat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import Internal, PinnaceError
from runtime.events.exchange import Exchange, SubscriberDropped, Subscription
from runtime.events.types import (
    Envelope,
    NetworkAttached,
    NetworkDetached,
    NetworkFailed,
    NetworkOp,
    SandboxNetnsCreated,
    SandboxNetnsRemoving,
)
from runtime.network.cni import Attachment, CniExecutor, is_netns, pod_args
from runtime.network.conf import ConfigLoad, candidate_files, load_default

log = logging.getLogger(__name__)

_TOPICS = ('topic=="/sandboxes/netns-created"', 'topic=="/sandboxes/netns-removing"')


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    """Whether pods can be networked (CRI ``NetworkReady``), and if not, why."""

    ready: bool
    reason: str
    message: str


_Signature = tuple[tuple[str, int, int], ...]


def _signature(conf_dir: Path) -> _Signature:
    try:
        own = conf_dir.stat()
    except OSError:
        return ()
    entries = [("", own.st_mtime_ns, 0)]
    for path in candidate_files(conf_dir):
        with contextlib.suppress(OSError):
            st = path.stat()
            entries.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(entries)


class NetworkManager:
    """Attaches and detaches pod sandboxes to the default CNI network, driven by events.

    A component: ``async with manager:`` subscribes on entry (events published after that
    are handled) and on exit unsubscribes and cancels in-flight CNI work. ``run()`` does the
    same for a task the composition root creates. ``ifname`` is the pod-side interface name.
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        conf_dir: Path,
        bin_dirs: Sequence[Path],
        cache_dir: Path,
        ifname: str = "eth0",
        plugin_timeout: float = 120.0,
    ) -> None:
        self._exchange = exchange
        self._conf_dir = Path(conf_dir)
        self._cni = CniExecutor(bin_dirs=bin_dirs, cache_dir=cache_dir, timeout=plugin_timeout)
        self._ifname = ifname
        self._signature: _Signature | None = None
        self._load = ConfigLoad(None, f"no network config found in {conf_dir}")
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    @property
    def cni(self) -> CniExecutor:
        """The plugin executor (for CHECK and GC by the CRI layer)."""
        return self._cni

    def _refresh(self) -> ConfigLoad:
        signature = _signature(self._conf_dir)
        if signature != self._signature:
            self._load = load_default(self._conf_dir)
            self._signature = signature
            if self._load.config:
                log.info("CNI network %s from %s", self._load.config.name, self._load.config.path)
        return self._load

    async def reload(self) -> ConfigLoad:
        """Re-read the conf dir if it changed (off the event loop); the current load."""
        return await asyncio.to_thread(self._refresh)

    def status(self) -> NetworkStatus:
        """Network readiness for CRI ``Status``. Cheap: stats the conf dir and re-reads it only
        when it changed."""
        load = self._refresh()
        if load.config is None:
            return NetworkStatus(
                False, "NetworkPluginNotReady", f"cni config not initialized: {load.reason}"
            )
        return NetworkStatus(True, "", "")

    async def __aenter__(self) -> NetworkManager:
        """Subscribe (from this moment no event is missed) and start handling events."""
        if self._runner is not None:
            raise Internal("network manager started twice")
        subscription = self._exchange.subscribe(*_TOPICS, queue_size=4096)
        self._runner = asyncio.create_task(self._consume(subscription), name="network-manager")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop: unsubscribe and cancel in-flight CNI work (plugins are killed)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)

    async def run(self) -> None:
        """Handle events until cancelled or the exchange closes (``async with`` in a task)."""
        async with self:
            assert self._runner is not None
            await asyncio.shield(self._runner)

    async def _consume(self, subscription: Subscription) -> None:
        try:
            while True:
                try:
                    async for envelope in subscription:
                        self._spawn(envelope)
                    return  # the exchange closed
                except SubscriberDropped:
                    log.error("network manager fell behind on events; some pods may wait")
                    subscription = self._exchange.subscribe(*_TOPICS, queue_size=4096)
        finally:
            subscription.close()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn(self, envelope: Envelope) -> None:
        event = envelope.event
        assert isinstance(event, SandboxNetnsCreated | SandboxNetnsRemoving)
        lock, users = self._locks.get(event.sandbox_id, (asyncio.Lock(), 0))
        self._locks[event.sandbox_id] = (lock, users + 1)
        task = asyncio.create_task(self._handle(envelope, lock), name=f"cni-{event.sandbox_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, envelope: Envelope, lock: asyncio.Lock) -> None:
        event = envelope.event
        assert isinstance(event, SandboxNetnsCreated | SandboxNetnsRemoving)
        try:
            async with lock:
                if isinstance(event, SandboxNetnsCreated):
                    await self._attach(envelope.namespace, event)
                else:
                    await self._detach(envelope.namespace, event)
        except Exception as e:  # a bug of ours: still answer, so no waiter hangs to its deadline
            log.exception("network manager failed on %s", envelope.topic)
            op = NetworkOp.ADD if isinstance(event, SandboxNetnsCreated) else NetworkOp.DEL
            self._exchange.publish(
                envelope.namespace, NetworkFailed(event.sandbox_id, f"internal error: {e!r}", op)
            )
        finally:
            held, users = self._locks[event.sandbox_id]
            if users <= 1:
                del self._locks[event.sandbox_id]
            else:
                self._locks[event.sandbox_id] = (held, users - 1)

    def _attachment(self, event: SandboxNetnsCreated | SandboxNetnsRemoving) -> Attachment:
        args: tuple[tuple[str, str], ...] = ()
        if event.pod_name:
            args = pod_args(
                pod_namespace=event.pod_namespace,
                pod_name=event.pod_name,
                infra_container_id=event.sandbox_id,
                pod_uid=event.pod_uid,
            )
        netns = event.netns_path
        if isinstance(event, SandboxNetnsCreated):
            return Attachment(
                container_id=event.sandbox_id,
                netns=netns,
                ifname=self._ifname,
                args=args,
                port_mappings=event.port_mappings,
                bandwidth=event.bandwidth,
                dns=event.dns,
            )
        return Attachment(
            container_id=event.sandbox_id,
            netns=netns if netns and is_netns(netns) else "",
            ifname=self._ifname,
            args=args,
            port_mappings=event.port_mappings,
        )

    async def _attach(self, namespace: str, event: SandboxNetnsCreated) -> None:
        try:
            load = await self.reload()
            if load.config is None:
                raise _NotReady(f"cni config not initialized: {load.reason}")
            attachment = await asyncio.to_thread(self._attachment, event)
            result = await self._cni.add(load.config, attachment)
        except (PinnaceError, OSError, _NotReady) as e:
            self._exchange.publish(
                namespace, NetworkFailed(event.sandbox_id, str(e) or repr(e), NetworkOp.ADD)
            )
            return
        self._exchange.publish(
            namespace,
            NetworkAttached(
                sandbox_id=event.sandbox_id,
                interfaces=result.interfaces,
                ips=result.ips,
                dns=result.dns,
            ),
        )

    async def _detach(self, namespace: str, event: SandboxNetnsRemoving) -> None:
        try:
            load = await self.reload()
            attachment = await asyncio.to_thread(self._attachment, event)
            await self._cni.delete(load.config, attachment)
        except (PinnaceError, OSError) as e:
            self._exchange.publish(
                namespace, NetworkFailed(event.sandbox_id, str(e) or repr(e), NetworkOp.DEL)
            )
            return
        self._exchange.publish(namespace, NetworkDetached(event.sandbox_id))


class _NotReady(Exception):
    """No usable network config: reported as a NetworkFailed event, never raised out."""
