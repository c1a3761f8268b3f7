"""The runtime side of NRI: plugins, their registration, and the lifecycle events they get.

Terms:

plugin
    A process speaking NRI: *external* ones connect to the NRI socket; *pre-installed* ones
    are executables ``NN-name`` in the plugin directory that pinnace starts itself, handing
    them one end of a socket pair (``NRI_PLUGIN_SOCKET`` names its fd). ``NN`` is the
    plugin's index: events go to plugins in ascending index order (ties: registration
    order).
registration
    The plugin calls ``RegisterPlugin`` (name and index validated as containerd does: an
    index is two digits, a name letters, digits and ``-_.+``) within the registration
    timeout; pinnace calls ``Configure`` (runtime name and version, timeouts, the plugin's
    drop-in config from ``<config dir>/NN-name.conf`` or ``name.conf``) and gets the
    plugin's event mask; then ``Synchronize`` with every pod and container, in chunks that
    stay under ttrpc's 4 MiB message limit. Only then does the plugin get events.
events
    Each hook of :class:`runtime.pods.hooks.PodHooks` becomes a call to every subscribed
    plugin, one after the other. A plugin that does not answer within the request timeout,
    closes its connection or breaks the protocol is dropped and the call goes on without it;
    a plugin that answers with an error fails the CRI call when the hook may fail it
    (RunPodSandbox, CreateContainer, StartContainer, UpdateContainer) and is logged
    otherwise. Plugins without a dedicated method for a notification get ``StateChange``.

Locks: the plugin list is copied per event (no lock is held while a plugin is called); the
:class:`~cri.nri.synclock.SyncLock` orders registrations against container creations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from google.protobuf.message import Message as PbMessage

from cri import unixsocket
from cri.api.nri.v1alpha1 import api_pb2 as npb
from cri.nri import convert, ttrpc
from cri.nri.adjust import Adjustments, DeviceInjector
from cri.nri.connection import CallTimeout, ConnectionClosed, PluginConnection
from cri.nri.plugin import (
    ALL_EVENTS,
    EVENT_NAMES,
    NRI_VERSION,
    STATE_CHANGE_FALLBACK,
    NriSettings,
    Plugin,
    PluginFailed,
    PodView,
    Recorder,
    check_plugin_index,
    check_plugin_name,
    event_names,
    no_record,
    sync_chunks,
)
from cri.nri.synclock import SyncLock
from runtime.errors import FailedPrecondition
from runtime.model.pods import Container, Resources, Sandbox

log = logging.getLogger(__name__)


class Adaptation:
    """NRI for one daemon; implements :class:`runtime.pods.hooks.PodHooks`."""

    def __init__(
        self,
        settings: NriSettings,
        *,
        cdi: DeviceInjector | None = None,
        record: Recorder = no_record,
    ) -> None:
        self.settings = settings
        self._cdi = cdi
        self._record = record
        self._view: PodView | None = None
        self._plugins: list[Plugin] = []
        self._seq: dict[Plugin, int] = {}
        self._counter = 0
        self._sync = SyncLock()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._all: set[Plugin] = set()
        self._claim: unixsocket.Claim | None = None  # the NRI socket, while ours
        # Containers as last described to plugins (from their specs), so an event need not
        # read and parse config.json again; dropped on update (the spec changed) and removal.
        self._described: dict[str, npb.Container] = {}

    def bind(self, view: PodView) -> None:
        self._view = view

    @property
    def view(self) -> PodView:
        assert self._view is not None, "Adaptation.bind() was not called"
        return self._view

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start pre-installed plugins, then listen on the socket."""
        await self._launch_preinstalled()
        path = self.settings.socket_path
        if path is not None:
            with contextlib.suppress(OSError):  # a failure shows when the socket is created
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                # Another runtime (containerd, CRI-O, a second pinnaced) may serve NRI there;
                # taking its socket away would cut its plugins off.
                await unixsocket.prepare(path, setting="--nri-socket or [nri] socket_path")
                self._server = await asyncio.start_unix_server(self._accept, path=str(path))
                os.chmod(path, 0o600)
                self._claim = unixsocket.claimed(path)
            except (OSError, FailedPrecondition) as exc:
                # NRI is an extension: pinnaced serves the CRI without it rather than not at all
                log.error("NRI socket %s: not listening: %s", path, exc)
                return
            log.info("NRI listening on %s", path)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            if self._claim is not None:
                self._claim.release()
        for task in list(self._tasks):
            task.cancel()
        for plugin in list(self._all):
            await self._drop(plugin, "pinnaced is shutting down")

    async def __aenter__(self) -> Adaptation:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        plugin = self._new_plugin(reader, writer, external=True)
        await self._register(plugin)

    def _new_plugin(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        external: bool,
        index: str = "",
        name: str = "",
    ) -> Plugin:
        holder: list[Plugin] = []

        async def serve(req: ttrpc.IncomingRequest) -> bytes:
            return await self._serve(holder[0], req)

        conn = PluginConnection(reader, writer, serve=serve, label="NRI plugin")
        plugin = Plugin(conn=conn, external=external, index=index, name=name)
        holder.append(plugin)
        self._all.add(plugin)
        conn.start()
        self._spawn(self._watch(plugin))
        return plugin

    async def _watch(self, plugin: Plugin) -> None:
        await plugin.conn.closed.wait()
        if plugin in self._all:
            await self._drop(plugin, "its connection closed")

    async def _launch_preinstalled(self) -> None:
        directory = self.settings.plugin_path
        if directory is None or not directory.is_dir():
            return
        try:
            entries = sorted(directory.iterdir())
        except OSError as exc:
            log.error("NRI plugin directory %s cannot be read: %s", directory, exc)
            return
        for entry in entries:
            if not entry.is_file() or not os.access(entry, os.X_OK):
                continue
            index, _, name = entry.name.partition("-")
            try:
                check_plugin_index(index)
                check_plugin_name(name)
            except ValueError as exc:
                log.warning("NRI: skipping %s: %s", entry, exc)
                continue
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                process = await asyncio.create_subprocess_exec(
                    str(entry),
                    env={
                        "NRI_PLUGIN_NAME": name,
                        "NRI_PLUGIN_IDX": index,
                        "NRI_PLUGIN_SOCKET": str(theirs.fileno()),
                        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                    },
                    pass_fds=(theirs.fileno(),),
                    stdin=asyncio.subprocess.DEVNULL,
                )
            except OSError as exc:
                log.warning("NRI: cannot start plugin %s: %s", entry, exc)
                ours.close()
                continue
            finally:
                theirs.close()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            plugin = self._new_plugin(reader, writer, external=False, index=index, name=name)
            plugin.process = process
            await self._register(plugin)

    def _plugin_config(self, plugin: Plugin) -> str:
        directory = self.settings.plugin_config_path
        if directory is None:
            return ""
        for candidate in (f"{plugin.full_name}.conf", f"{plugin.name}.conf"):
            try:
                return (directory / candidate).read_text()
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                log.warning(
                    "NRI plugin %s: config %s unreadable: %s", plugin.full_name, candidate, exc
                )
                return ""
        return ""

    async def _register(self, plugin: Plugin) -> None:
        """Registration, Configure and Synchronize; the plugin joins the event order only
        when all three succeed."""
        s = self.settings
        try:
            async with asyncio.timeout(s.registration_timeout):
                await asyncio.shield(plugin.registered)
            rpl = await self._invoke(
                plugin,
                "Configure",
                npb.ConfigureRequest(
                    config=self._plugin_config(plugin),
                    runtime_name=s.runtime_name,
                    runtime_version=s.runtime_version,
                    registration_timeout=int(s.registration_timeout * 1000),
                    request_timeout=int(s.request_timeout * 1000),
                    NRI_version=NRI_VERSION,
                ),
                npb.ConfigureResponse,
            )
            events = rpl.events or ALL_EVENTS
            if events & ~ALL_EVENTS:
                raise ValueError(f"invalid plugin events: 0x{events & ~ALL_EVENTS:x}")
            plugin.events = events
            async with self._sync.exclusive():
                updates = await self._synchronize(plugin)
                plugin.ready = True
                self._counter += 1
                self._seq[plugin] = self._counter
                self._plugins = sorted(
                    [*self._plugins, plugin], key=lambda p: (p.index, self._seq[p])
                )
            log.info(
                "NRI plugin %s registered (events: %s)",
                plugin.full_name,
                ",".join(event_names(plugin.events)),
            )
        except TimeoutError:
            await self._drop(plugin, "it did not register in time")
            return
        except (ValueError, ttrpc.RpcError, CallTimeout, ConnectionClosed) as exc:
            await self._drop(plugin, f"its registration failed: {exc}")
            return
        await self._apply_updates(list(updates), plugin.full_name)

    async def _synchronize(self, plugin: Plugin) -> list[npb.ContainerUpdate]:
        view = self.view
        pods = [convert.pod_sandbox(s) for s in view.sandboxes()]
        members = view.containers()
        specs = await asyncio.to_thread(lambda: [view.spec(c) for c in members])
        ctrs = [convert.container(c, spec) for c, spec in zip(members, specs, strict=True)]
        chunks = sync_chunks(pods, ctrs)
        updates: list[npb.ContainerUpdate] = []
        for i, (chunk_pods, chunk_ctrs) in enumerate(chunks):
            more = i < len(chunks) - 1
            rpl = await self._invoke(
                plugin,
                "Synchronize",
                npb.SynchronizeRequest(pods=chunk_pods, containers=chunk_ctrs, more=more),
                npb.SynchronizeResponse,
            )
            if more and (rpl.update or not rpl.more):
                raise ValueError("plugin does not handle split sync requests")
            updates.extend(rpl.update)
        return updates

    async def _drop(self, plugin: Plugin, why: str) -> None:
        if plugin not in self._all:
            return
        self._all.discard(plugin)
        if plugin in self._plugins:
            self._plugins = [p for p in self._plugins if p is not plugin]
        log.warning("NRI plugin %s dropped: %s", plugin.full_name, why)
        await plugin.conn.close()
        if plugin.process is not None and plugin.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                plugin.process.kill()
            with contextlib.suppress(Exception):
                await plugin.process.wait()

    # ---- the runtime service the plugins call ------------------------------------------------

    async def _serve(self, plugin: Plugin, req: ttrpc.IncomingRequest) -> bytes:
        if req.method == "RegisterPlugin":
            reg = npb.RegisterPluginRequest.FromString(req.payload)
            if plugin.external:
                try:
                    check_plugin_name(reg.plugin_name)
                    check_plugin_index(reg.plugin_idx)
                except ValueError as exc:
                    if not plugin.registered.done():
                        plugin.registered.set_exception(exc)
                    raise ttrpc.RpcError(ttrpc.Code.INVALID_ARGUMENT, str(exc)) from None
                plugin.name, plugin.index = reg.plugin_name, reg.plugin_idx
            if not plugin.registered.done():
                plugin.registered.set_result(None)
            return ttrpc.ServerSide.answer(req.stream_id, npb.Empty().SerializeToString())
        if req.method == "UpdateContainers":
            if not plugin.ready:
                raise ttrpc.RpcError(ttrpc.Code.FAILED_PRECONDITION, "plugin is not registered")
            body = npb.UpdateContainersRequest.FromString(req.payload)
            failed = await self._apply_updates(list(body.update), plugin.full_name)
            for eviction in body.evict:
                await self._evict(eviction, plugin.full_name)
            reply = npb.UpdateContainersResponse(failed=failed)
            return ttrpc.ServerSide.answer(req.stream_id, reply.SerializeToString())
        raise ttrpc.RpcError(ttrpc.Code.UNIMPLEMENTED, f"method {req.method}")

    async def _apply_updates(
        self, updates: list[npb.ContainerUpdate], plugin: str
    ) -> list[npb.ContainerUpdate]:
        failed = []
        for u in updates:
            current = self.view.container(u.container_id)
            try:
                if current is None:
                    raise FailedPrecondition(f"container {u.container_id} not found")
                resources = convert.resources_from(u.linux.resources, current.resources)
                self._described.pop(u.container_id, None)  # its spec changes
                await self.view.update_resources(u.container_id, resources)
            except Exception as exc:
                log.warning(
                    "NRI plugin %s: update of container %s failed: %s", plugin, u.container_id, exc
                )
                if not u.ignore_failure:
                    failed.append(u)
        return failed

    async def _evict(self, eviction: npb.ContainerEviction, plugin: str) -> None:
        log.info(
            "NRI plugin %s evicts container %s: %s", plugin, eviction.container_id, eviction.reason
        )
        try:
            await self.view.evict(eviction.container_id, eviction.reason)
        except Exception as exc:
            log.warning("eviction of %s failed: %s", eviction.container_id, exc)

    # ---- calling plugins ----------------------------------------------------------------------

    async def _invoke(
        self, plugin: Plugin, method: str, request: PbMessage, response: type[Any]
    ) -> Any:
        start = time.monotonic()
        plugin.calls += 1
        try:
            rpl = await plugin.conn.call(
                method, request, response, timeout=self.settings.request_timeout
            )
        except (ttrpc.RpcError, CallTimeout, ConnectionClosed) as exc:
            plugin.failures += 1
            result = "timeout" if isinstance(exc, CallTimeout) else "error"
            self._record(plugin.full_name, method, result, time.monotonic() - start)
            raise
        self._record(plugin.full_name, method, "ok", time.monotonic() - start)
        return rpl

    async def _event(
        self,
        event: int,
        request: PbMessage,
        response: type[Any],
        *,
        may_fail: bool,
        pod: npb.PodSandbox | None = None,
        container: npb.Container | None = None,
    ) -> list[tuple[Plugin, Any]]:
        """Send ``event`` to every subscribed plugin in order; their answers."""
        method = EVENT_NAMES[event]
        answers: list[tuple[Plugin, Any]] = []
        for plugin in list(self._plugins):
            if not plugin.wants(event) or plugin not in self._all:
                continue
            try:
                rpl = await self._invoke(plugin, method, request, response)
            except (CallTimeout, ConnectionClosed) as exc:
                await self._drop(plugin, f"{method}: {exc}")
                continue
            except ttrpc.RpcError as exc:
                if exc.code == ttrpc.Code.UNIMPLEMENTED and event in STATE_CHANGE_FALLBACK:
                    with contextlib.suppress(ttrpc.RpcError, CallTimeout, ConnectionClosed):
                        await self._invoke(
                            plugin,
                            "StateChange",
                            npb.StateChangeEvent(
                                event=event,  # type: ignore[arg-type]
                                pod=pod,
                                container=container,
                            ),
                            npb.Empty,
                        )
                    continue
                if may_fail:
                    raise PluginFailed(
                        f"NRI plugin {plugin.full_name} failed {method}: {exc.message}"
                    ) from None
                log.warning("NRI plugin %s failed %s: %s", plugin.full_name, method, exc)
                continue
            answers.append((plugin, rpl))
        return answers

    # ---- PodHooks -----------------------------------------------------------------------------

    def creating(self) -> AbstractAsyncContextManager[None]:
        return self._sync.shared()

    async def run_pod_sandbox(self, sandbox: Sandbox) -> None:
        pod = convert.pod_sandbox(sandbox)
        await self._event(
            npb.RUN_POD_SANDBOX,
            npb.RunPodSandboxRequest(pod=pod),
            npb.RunPodSandboxResponse,
            may_fail=True,
            pod=pod,
        )

    async def update_pod_sandbox(
        self, sandbox: Sandbox, *, overhead: Resources | None, resources: Resources | None
    ) -> None:
        if not self._plugins:
            return
        req = npb.UpdatePodSandboxRequest(pod=convert.pod_sandbox(sandbox))
        if overhead is not None:
            req.overhead_linux_resources.CopyFrom(convert.linux_resources(overhead))
        if resources is not None:
            req.linux_resources.CopyFrom(convert.linux_resources(resources))
        await self._event(npb.UPDATE_POD_SANDBOX, req, npb.UpdatePodSandboxResponse, may_fail=True)

    async def post_update_pod_sandbox(self, sandbox: Sandbox) -> None:
        if not self._plugins:
            return
        pod = convert.pod_sandbox(sandbox)
        await self._event(
            npb.POST_UPDATE_POD_SANDBOX,
            npb.PostUpdatePodSandboxRequest(pod=pod),
            npb.PostUpdatePodSandboxResponse,
            may_fail=False,
            pod=pod,
        )

    async def stop_pod_sandbox(self, sandbox: Sandbox) -> None:
        pod = convert.pod_sandbox(sandbox)
        await self._event(
            npb.STOP_POD_SANDBOX,
            npb.StopPodSandboxRequest(pod=pod),
            npb.StopPodSandboxResponse,
            may_fail=False,
            pod=pod,
        )

    async def remove_pod_sandbox(self, sandbox: Sandbox) -> None:
        pod = convert.pod_sandbox(sandbox)
        await self._event(
            npb.REMOVE_POD_SANDBOX,
            npb.RemovePodSandboxRequest(pod=pod),
            npb.RemovePodSandboxResponse,
            may_fail=False,
            pod=pod,
        )

    async def create_container(
        self, sandbox: Sandbox, container: Container, spec: dict[str, Any]
    ) -> None:
        if not self._plugins:
            return
        pod = convert.pod_sandbox(sandbox)
        ctr = convert.container(container, spec)
        adjustments = Adjustments(container.id)
        updates: list[npb.ContainerUpdate] = []
        evictions: list[npb.ContainerEviction] = []
        order: list[Plugin] = []
        answers = await self._event(
            npb.CREATE_CONTAINER,
            npb.CreateContainerRequest(pod=pod, container=ctr),
            npb.CreateContainerResponse,
            may_fail=True,
        )
        adjusted = False
        for plugin, rpl in answers:
            order.append(plugin)
            if rpl.HasField("adjust"):
                adjustments.apply(spec, rpl.adjust, plugin.full_name)
                adjusted = True
            updates.extend(rpl.update)
            evictions.extend(rpl.evict)
        if adjustments.cdi_devices:  # CDI stats spec files and device nodes: off the loop
            await asyncio.to_thread(adjustments.inject_cdi, spec, self._cdi)
        await self._validate(pod, ctr, adjustments, updates, order)
        # what later events show: the spec as adjusted (the request's view when unchanged)
        self._described[container.id] = convert.container(container, spec) if adjusted else ctr
        if updates or evictions:
            self._spawn(self._later(updates, evictions, container.id))

    async def _later(
        self,
        updates: list[npb.ContainerUpdate],
        evictions: list[npb.ContainerEviction],
        creating: str,
    ) -> None:
        await self._apply_updates([u for u in updates if u.container_id != creating], "plugins")
        for e in evictions:
            await self._evict(e, "plugins")

    async def _validate(
        self,
        pod: npb.PodSandbox,
        ctr: npb.Container,
        adjustments: Adjustments,
        updates: list[npb.ContainerUpdate],
        order: list[Plugin],
    ) -> None:
        validators = [p for p in self._plugins if p.wants(npb.VALIDATE_CONTAINER_ADJUSTMENT)]
        if not validators:
            return
        req = npb.ValidateContainerAdjustmentRequest(
            pod=pod,
            container=ctr,
            adjust=adjustments.merged,
            update=updates,
            owners=adjustments.owning_plugins(),
            plugins=[npb.PluginInstance(name=p.name, index=p.index) for p in order],
        )
        for plugin in validators:
            try:
                rpl = await self._invoke(
                    plugin,
                    "ValidateContainerAdjustment",
                    req,
                    npb.ValidateContainerAdjustmentResponse,
                )
            except (CallTimeout, ConnectionClosed) as exc:
                await self._drop(plugin, f"ValidateContainerAdjustment: {exc}")
                continue
            except ttrpc.RpcError as exc:
                raise PluginFailed(
                    f"NRI validator {plugin.full_name} failed: {exc.message}"
                ) from None
            if rpl.reject:
                raise PluginFailed(
                    f"NRI validator {plugin.full_name} rejected the adjustments of container "
                    f"{ctr.name}: {rpl.reason}"
                )

    async def _describe(self, container: Container) -> npb.Container:
        base = self._described.get(container.id)
        if base is None:
            spec = await asyncio.to_thread(self.view.spec, container)
            base = self._described[container.id] = convert.container(container, spec)
        return convert.refreshed(base, container)

    async def _container_event(
        self,
        event: int,
        request_type: type[Any],
        response: type[Any],
        sandbox: Sandbox,
        container: Container,
        *,
        may_fail: bool,
    ) -> list[tuple[Plugin, Any]]:
        if not self._plugins:
            return []
        pod = convert.pod_sandbox(sandbox)
        ctr = await self._describe(container)
        return await self._event(
            event,
            request_type(pod=pod, container=ctr),
            response,
            may_fail=may_fail,
            pod=pod,
            container=ctr,
        )

    async def post_create_container(self, sandbox: Sandbox, container: Container) -> None:
        await self._container_event(
            npb.POST_CREATE_CONTAINER,
            npb.PostCreateContainerRequest,
            npb.PostCreateContainerResponse,
            sandbox,
            container,
            may_fail=False,
        )

    async def start_container(self, sandbox: Sandbox, container: Container) -> None:
        await self._container_event(
            npb.START_CONTAINER,
            npb.StartContainerRequest,
            npb.StartContainerResponse,
            sandbox,
            container,
            may_fail=True,
        )

    async def post_start_container(self, sandbox: Sandbox, container: Container) -> None:
        await self._container_event(
            npb.POST_START_CONTAINER,
            npb.PostStartContainerRequest,
            npb.PostStartContainerResponse,
            sandbox,
            container,
            may_fail=False,
        )

    async def update_container(
        self, sandbox: Sandbox, container: Container, resources: Resources
    ) -> Resources:
        if not self._plugins:
            return resources
        pod = convert.pod_sandbox(sandbox)
        ctr = await self._describe(container)
        self._described.pop(container.id, None)  # its spec is about to change
        answers = await self._event(
            npb.UPDATE_CONTAINER,
            npb.UpdateContainerRequest(
                pod=pod, container=ctr, linux_resources=convert.linux_resources(resources)
            ),
            npb.UpdateContainerResponse,
            may_fail=True,
        )
        others: list[npb.ContainerUpdate] = []
        evictions: list[npb.ContainerEviction] = []
        claims = Adjustments(container.id)
        for plugin, rpl in answers:
            for u in rpl.update:
                if u.container_id == container.id:
                    claims.claim_resources(u.linux.resources, plugin.full_name)
                    resources = convert.resources_from(u.linux.resources, resources)
                else:
                    others.append(u)
            evictions.extend(rpl.evict)
        if others or evictions:
            self._spawn(self._later(others, evictions, container.id))
        return resources

    async def post_update_container(self, sandbox: Sandbox, container: Container) -> None:
        await self._container_event(
            npb.POST_UPDATE_CONTAINER,
            npb.PostUpdateContainerRequest,
            npb.PostUpdateContainerResponse,
            sandbox,
            container,
            may_fail=False,
        )

    async def stop_container(self, sandbox: Sandbox, container: Container) -> None:
        answers = await self._container_event(
            npb.STOP_CONTAINER,
            npb.StopContainerRequest,
            npb.StopContainerResponse,
            sandbox,
            container,
            may_fail=False,
        )
        updates = [u for _p, rpl in answers for u in rpl.update]
        if updates:
            self._spawn(self._later(updates, [], container.id))

    async def remove_container(self, sandbox: Sandbox, container: Container) -> None:
        described = self._described.pop(container.id, None)
        if not self._plugins:
            return
        pod = convert.pod_sandbox(sandbox)
        ctr = (
            convert.refreshed(described, container)
            if described is not None
            else convert.container(container, None)
        )
        await self._event(
            npb.REMOVE_CONTAINER,
            npb.RemoveContainerRequest(pod=pod, container=ctr),
            npb.RemoveContainerResponse,
            may_fail=False,
            pod=pod,
            container=ctr,
        )

    # ---- what `pinnace nri ls` shows -------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "socket": str(self.settings.socket_path) if self._claim is not None else "",
            "plugins": [
                {
                    "index": p.index,
                    "name": p.name,
                    "external": p.external,
                    "events": event_names(p.events),
                    "calls": p.calls,
                    "failures": p.failures,
                }
                for p in self._plugins
            ],
        }
