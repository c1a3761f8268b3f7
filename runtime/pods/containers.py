"""The container controller: create, start, stop, remove, exec, update, and exits.

Like containerd, a container is created as metadata and a prepared bundle (a mounted rootfs
from a snapshot of its image, and the OCI spec) and becomes a runc task under conmon only when
it is started, so a command the image lacks fails StartContainer with runc's reason and the
container reports ``StartError``. States::

    CREATED ──start──► RUNNING ──(exit fact)──► EXITED ──remove──► gone
       │                                          ▲
       └──────── start fails (StartError) ────────┘

Every state change is persisted before it is published; a container's transitions are
ordered by a per-container lock, so an exit that arrives while ``start`` is still recording
never goes back to RUNNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime import faults, oci
from runtime.aio import shielded
from runtime.cdi import CdiRegistry, requested_devices
from runtime.cgroups import CgroupMounts, CgroupStats, read_stats
from runtime.cgroups.detail import CgroupDetail, Pressures, read_detail, read_pressures
from runtime.errors import (
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PinnaceError,
)
from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.images import manifest as manifests
from runtime.images import naming
from runtime.model.lifecycle import (
    ContainerAction,
    SandboxAction,
    Step,
    container_step,
    sandbox_step,
)
from runtime.model.pods import (
    Container,
    ContainerConfig,
    ContainerState,
    ContainerUser,
    Mount,
    NamespaceMode,
    Resources,
    Sandbox,
    UserNamespace,
)
from runtime.pods import idmapped_volumes, image_volumes
from runtime.pods import rootfs as rootfs_mod
from runtime.pods.creations import Creations
from runtime.pods.hooks import NoHooks, PodHooks
from runtime.pods.interfaces import BundleDirs, ImageSource, RootfsMounts, TaskService
from runtime.pods.sandboxes import SandboxController, new_id, now_ns
from runtime.pods.settings import PodSettings
from runtime.pods.store import PodStore, container_name_key
from runtime.snapshots.interfaces import Snapshotter
from runtime.tasks.attach import AttachedStdio
from runtime.tasks.exec_session import ExecSession
from runtime.tasks.interfaces import ExecResult, ExitFact, RecoveredTask, TaskSpec, TaskState

log = logging.getLogger(__name__)

EXIT_CODE_START_ERROR = 128
# The reason reported for a container killed because its conmon died first.
REASON_SUPERVISOR_DIED = "SupervisorDied"


def _spec_user(spec: Mapping[str, Any]) -> ContainerUser:
    """The identity the spec gives the container's process (what ContainerStatus reports)."""
    user = spec["process"]["user"]
    return ContainerUser(
        uid=int(user["uid"]),
        gid=int(user["gid"]),
        groups=tuple(int(g) for g in user.get("additionalGids", ())),
    )


def _exit_reason(exit: ExitFact) -> str:
    if exit.supervisor_lost:
        return REASON_SUPERVISOR_DIED
    if exit.oom_killed:
        return "OOMKilled"
    return "Completed" if exit.exit_code == 0 else "Error"


def _exit_message(exit: ExitFact) -> str:
    if exit.supervisor_lost:
        return (
            "the container's supervisor (conmon) died while it ran; pinnaced killed the "
            "orphaned process"
        )
    return ""


class ContainerController:
    """Creates and runs the containers of pod sandboxes."""

    def __init__(
        self,
        *,
        store: PodStore,
        tasks: TaskService,
        images: ImageSource,
        snapshotter: Snapshotter,
        exchange: Exchange,
        settings: PodSettings,
        sandboxes: SandboxController,
        cgroups: CgroupMounts | None,
        cdi: CdiRegistry | None = None,
        rootfs: RootfsMounts | None = None,
        dirs: BundleDirs | None = None,
        hooks: PodHooks | None = None,
    ) -> None:
        self._store = store
        self._hooks: PodHooks = hooks or NoHooks()
        self._hook_order: dict[str, asyncio.Lock] = {}
        self._cdi = cdi
        self._tasks = tasks
        self._images = images
        self._sn = snapshotter
        self._exchange = exchange
        self._settings = settings
        self._sandboxes = sandboxes
        self._cgroups = cgroups
        self._rootfs: RootfsMounts = rootfs or rootfs_mod.HostRootfs()
        self._dirs: BundleDirs = dirs or rootfs_mod.HostDirs()
        self._creations: Creations[Container] = Creations(store.names, "container")
        self._locks: dict[str, asyncio.Lock] = {}
        self._exit_tasks: set[asyncio.Task[Container | None]] = set()

    def _dir(self, container_id: str) -> Path:
        return self._settings.state_dir / "containers" / container_id

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def get(self, container_id: str) -> Container:
        container = self._store.containers.get(container_id)
        if container is None:
            raise NotFound(f"container {container_id} not found")
        return container

    async def _transition(
        self, container_id: str, change: Callable[[Container], Container | None]
    ) -> Container | None:
        """Apply ``change`` to the current record under the container's lock and persist it
        (``change`` returns None to leave the record as it is)."""
        async with self._lock(container_id):
            current = self._store.containers.get(container_id)
            if current is None:
                return None
            updated = change(current)
            if updated is None or updated == current:
                return current
            await asyncio.to_thread(self._store.put_container, updated)
            return updated

    async def _delete_task(self, container_id: str, *, pid: int, exit_status: int) -> None:
        """Delete the container's task and say so (/tasks/delete) once it is gone."""
        await self._tasks.delete(container_id, force=True)
        self._exchange.publish(
            ev.K8S_NAMESPACE,
            ev.TaskDelete(container_id=container_id, pid=pid, exit_status=exit_status),
        )

    def _publish(self, step: Step[ContainerState], event: ev.Event) -> None:
        """Publish ``event`` if the lifecycle table's row names its topic (and only then)."""
        if step.topic is None:
            return
        if step.topic != event.topic:
            raise Internal(f"lifecycle table says {step.topic}, the controller has {event.topic}")
        self._exchange.publish(ev.K8S_NAMESPACE, event)

    # ---- create -------------------------------------------------------------------------

    async def create(self, sandbox_id: str, config: ContainerConfig) -> Container:
        sandbox = self._store.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise NotFound(f"pod sandbox {sandbox_id} not found")
        sandbox_step(sandbox.state, SandboxAction.CREATE_CONTAINER, id=sandbox_id)
        _check_userns(sandbox, config)
        image = self._images.find(config.image)
        if image is None:
            raise NotFound(
                f"image {config.image!r} not found: pull it before creating the container"
            )
        return await self._creations.create_once(
            container_name_key(config, sandbox.config.metadata),
            new_id(),
            lambda container_id: self._create(container_id, sandbox, config, image),
            existing=self._store.containers.get,
            same=lambda c: c.config == config and c.sandbox_id == sandbox.id,
        )

    async def _create(
        self, container_id: str, sandbox: Sandbox, config: ContainerConfig, image: Any
    ) -> Container:
        # Held until the record is stored: a plugin synchronizing meanwhile sees this
        # container in its snapshot or in a CreateContainer event, never in neither.
        async with self._hooks.creating():
            container = await self._build(container_id, sandbox, config, image)
        await self._hooks.post_create_container(sandbox, container)
        return container

    async def _build(
        self, container_id: str, sandbox: Sandbox, config: ContainerConfig, image: Any
    ) -> Container:
        directory = self._dir(container_id)
        snapshot_key = f"container-{container_id}"
        rootfs = directory / "rootfs"
        undo = contextlib.AsyncExitStack()
        try:
            await asyncio.to_thread(self._dirs.make, directory)
            undo.push_async_callback(asyncio.to_thread, self._dirs.remove, directory)
            snapshot_mounts = await asyncio.to_thread(
                self._sn.prepare, snapshot_key, image.chain_id
            )
            undo.push_async_callback(
                asyncio.to_thread, rootfs_mod.remove_snapshot, self._sn, snapshot_key
            )
            await asyncio.to_thread(self._sandboxes.mount_rootfs, sandbox, snapshot_mounts, rootfs)
            faults.point("container.create.rootfs-mounted")
            undo.push_async_callback(asyncio.to_thread, self._rootfs.unmount, rootfs)
            mounts = await self._mount_image_volumes(container_id, sandbox, config, directory, undo)
            mounts = await self._mount_idmapped_volumes(sandbox, mounts, directory, undo)
            log_path = _log_path(sandbox, config)

            def build() -> tuple[Resources | None, dict[str, Any]]:
                # file work (the image's passwd and group in the rootfs, device nodes, a
                # seccomp profile, /proc/self/oom_score_adj, CDI specs): off the event loop,
                # in one thread hop
                host_adj = rootfs_mod.own_oom_score_adj()
                applied = self._applicable(config, host_adj)
                spec = oci.build_container_spec(
                    container=dataclasses.replace(config, resources=applied, mounts=mounts),
                    sandbox=sandbox,
                    image=manifests.parse_image_config(image.config_json.encode()),
                    rootfs=rootfs,
                    cgroups_path=self._sandboxes.cgroups_path(sandbox, container_id),
                    sandbox_files=_sandbox_files(sandbox),
                    namespace_paths=sandbox.namespace_paths,
                    host_oom_score_adj=host_adj,
                    cgroup_v2=self._settings.cgroup_v2,
                    image_name=naming.shown_name(
                        user_specified=config.user_specified_image,
                        requested=config.image,
                        repo_tags=image.repo_tags,
                    ),
                    recursive_read_only=self._settings.features(
                        sandbox.runtime_handler
                    ).recursive_read_only,
                    security_modules=self._settings.security_modules,
                )
                self._inject_cdi_devices(spec, config)
                return applied, spec

            applied, spec = await asyncio.to_thread(build)
            container = Container(
                id=container_id,
                sandbox_id=sandbox.id,
                config=config,
                image_id=image.id,
                image_name=config.image,
                state=ContainerState.CREATED,
                created_at=now_ns(),
                log_path=str(log_path) if log_path else "",
                runtime_handler=sandbox.runtime_handler,
                resources=applied,
                snapshot_key=snapshot_key,
                bundle=str(directory),
                user=_spec_user(spec),
                apparmor_profile=spec["process"].get("apparmorProfile", ""),
            )
            await self._hooks.create_container(sandbox, container, spec)

            def record() -> None:
                # the bundle's config.json, then the durable record (one thread hop)
                oci.write_spec(directory / "config.json", spec)
                self._store.put_container(container)

            await asyncio.to_thread(record)
            faults.point("container.create.recorded")
        except BaseException:
            await shielded(undo.aclose())
            raise
        undo.pop_all()
        self._exchange.publish(
            ev.K8S_NAMESPACE,
            ev.ContainerCreate(container_id=container_id, image=image.id, sandbox_id=sandbox.id),
        )
        return container

    async def _mount_idmapped_volumes(
        self,
        sandbox: Sandbox,
        mounts: tuple[Mount, ...],
        directory: Path,
        undo: contextlib.AsyncExitStack,
    ) -> tuple[Mount, ...]:
        """The container's mounts with each bind that asks to be id-mapped pointed at an
        id-mapped copy (:mod:`runtime.pods.idmapped_volumes`); undone by ``undo``."""
        if not any(m.idmapped and not m.image for m in mounts):
            return mounts
        user = sandbox.namespace_paths.get("user")
        userns = sandbox.config.security.namespaces.userns
        pod = (Path(user), userns) if user and userns is not None else None
        undo.push_async_callback(
            asyncio.to_thread,
            functools.partial(idmapped_volumes.unmount_volumes, self._rootfs, directory=directory),
        )
        out = await asyncio.to_thread(
            functools.partial(
                idmapped_volumes.mount_volumes,
                self._rootfs,
                mounts,
                directory=directory,
                pod=pod,
            )
        )
        faults.point("container.create.volumes-idmapped")
        return out

    async def _mount_image_volumes(
        self,
        container_id: str,
        sandbox: Sandbox,
        config: ContainerConfig,
        directory: Path,
        undo: contextlib.AsyncExitStack,
    ) -> tuple[Mount, ...]:
        """The container's mounts with each image volume mounted and turned into a bind of
        its mountpoint (see :mod:`runtime.pods.image_volumes`); undone by ``undo``."""
        wanted = image_volumes.image_mounts(config.mounts)
        if not wanted:
            return config.mounts
        undo.push_async_callback(
            asyncio.to_thread,
            functools.partial(
                image_volumes.unmount_volumes,
                self._sn,
                self._rootfs,
                container_id=container_id,
                directory=directory,
                count=len(config.mounts),
            ),
        )
        mounts = list(config.mounts)
        user = sandbox.namespace_paths.get("user")
        for index, mount in wanted:
            record = self._images.find(mount.image)
            if record is None:
                raise NotFound(
                    f"image volume {mount.image!r} at {mount.container_path}: the image is not "
                    "present; pull it before creating the container"
                )
            mounts[index] = await asyncio.to_thread(
                functools.partial(
                    image_volumes.mount_volume,
                    self._sn,
                    self._rootfs,
                    container_id=container_id,
                    index=index,
                    chain_id=record.chain_id,
                    directory=directory,
                    mount=mount,
                    userns=Path(user) if user else None,
                )
            )
        return tuple(mounts)

    def _inject_cdi_devices(self, spec: dict[str, Any], config: ContainerConfig) -> None:
        """Blocking: the CDI devices the container asks for (CDI_devices and ``cdi.k8s.io/``
        annotations) applied to its spec; InvalidArgument names an unknown one."""
        names = requested_devices(config.cdi_devices, config.annotations)
        if not names:
            return
        if self._cdi is None:
            raise InvalidArgument(f"CDI device {names[0]!r} requested but CDI is not configured")
        self._cdi.inject(spec, names)

    def _applicable(self, config: ContainerConfig, host_oom_score_adj: int) -> Resources | None:
        """What of the requested resources the node applies (the rest is dropped and
        logged, never failing the container)."""
        ignored = oci.ignored_class_annotations(config.annotations)
        if ignored:
            log.debug(
                "container %s: RDT/block-IO classes are not applied: %s", config.name, ignored
            )
        return oci.applicable_resources(
            config.resources,
            self._settings.host_resources,
            tolerate_missing_hugetlb=self._settings.tolerate_missing_hugetlb_controller,
            host_oom_score_adj=host_oom_score_adj,
        )

    # ---- start --------------------------------------------------------------------------

    async def start(self, container_id: str) -> Container:
        container = self.get(container_id)
        container_step(container.state, ContainerAction.START, id=container_id)
        sandbox = self._store.sandboxes.get(container.sandbox_id)
        if sandbox is None:
            raise FailedPrecondition(f"pod sandbox of container {container_id} is gone")
        sandbox_step(sandbox.state, SandboxAction.START_CONTAINER, id=sandbox.id)
        directory = Path(container.bundle)
        # (the task service makes the log file's directory)
        log_path = Path(container.log_path) if container.log_path else directory / "console.log"
        spec = TaskSpec(
            id=container_id,
            bundle=directory,
            runtime=container.runtime_handler,
            log_path=log_path,
            stdin=container.config.stdin,
            stdin_once=container.config.stdin_once,
            tty=container.config.tty,
        )
        # The start notifications of a container come before its stop notification, even
        # when it exits before start() has finished (the exit monitor waits for them).
        async with self._notification_order(container_id):
            return await self._start_task(container_id, container, sandbox, spec)

    async def _start_task(
        self, container_id: str, container: Container, sandbox: Sandbox, spec: TaskSpec
    ) -> Container:
        await self._hooks.start_container(sandbox, container)
        started_at = now_ns()
        try:
            try:  # a task made by a start cut short by a crash is started, not made again
                info = self._tasks.info(container_id)
            except NotFound:
                info = await self._tasks.create(spec)
                self._exchange.publish(
                    ev.K8S_NAMESPACE, ev.TaskCreate(container_id=container_id, pid=info.pid)
                )
            faults.point("container.start.task-created")
            try:
                await self._tasks.start(container_id)
                faults.point("container.start.task-started")
            except BaseException:
                await shielded(self._delete_task(container_id, pid=info.pid, exit_status=0))
                raise
        except PinnaceError as exc:
            message = str(exc)

            def start_failed(c: Container) -> Container | None:
                step = _step_if_allowed(c, ContainerAction.START_FAILED)
                if step is None:
                    return None
                return dataclasses.replace(
                    c,
                    state=step.state,
                    started_at=started_at,
                    finished_at=now_ns(),
                    exit_code=EXIT_CODE_START_ERROR,
                    reason="StartError",
                    message=message,
                )

            await self._transition(container_id, start_failed)
            raise FailedPrecondition(
                f"failed to start container {container_id}: {message}"
            ) from exc

        def running(c: Container) -> Container:
            step = _step_if_allowed(c, ContainerAction.START)
            if step is None:  # the exit was recorded first: it stays EXITED, with its pid
                return dataclasses.replace(c, started_at=started_at, pid=info.pid)
            return dataclasses.replace(c, state=step.state, started_at=started_at, pid=info.pid)

        updated = await self._transition(container_id, running)
        self._publish(
            container_step(ContainerState.CREATED, ContainerAction.START),
            ev.TaskStart(container_id=container_id, pid=info.pid),
        )
        assert updated is not None
        await self._hooks.post_start_container(sandbox, updated)
        return updated

    # ---- exits --------------------------------------------------------------------------

    def on_exit(self, exit: ExitFact) -> None:
        """The task manager's exit callback: record the exit (in a task of its own)."""
        if self._store.containers.get(exit.id) is None:
            return  # an infra task, or a container being removed
        task = asyncio.ensure_future(self.record_exit(exit))
        self._exit_tasks.add(task)
        task.add_done_callback(self._exit_tasks.discard)

    async def record_exit(self, exit: ExitFact) -> Container | None:
        """Record ``exit`` once: the second report of one exit (the exit callback and a stop
        both see it) changes nothing and publishes nothing."""
        first: list[tuple[Container, Step[ContainerState]]] = []

        def exited(c: Container) -> Container | None:
            step = container_step(c.state, ContainerAction.EXIT, id=c.id)
            if not step.changes:
                return None
            first.append((c, step))
            return dataclasses.replace(
                c,
                state=step.state,
                finished_at=exit.exited_at,
                exit_code=exit.exit_code,
                reason=_exit_reason(exit),
                message=_exit_message(exit) or c.message,
            )

        # A container can exit before start() has recorded it as running (conmon's exit file
        # may be seen before `runc start` returns): the exit waits for the start to finish, so
        # /tasks/start is always published before /tasks/exit.
        async with self._notification_order(exit.id):
            updated = await self._transition(exit.id, exited)
            if first:
                before, step = first[0]
                exited_at = datetime.fromtimestamp(exit.exited_at / 1e9, tz=UTC)
                self._publish(
                    step,
                    ev.TaskExit(
                        container_id=exit.id,
                        pid=before.pid,
                        exit_status=exit.exit_code,
                        exited_at=exited_at,
                    ),
                )
                if exit.oom_killed:
                    self._exchange.publish(ev.K8S_NAMESPACE, ev.TaskOOM(container_id=exit.id))
        if first:
            await self._notify_stopped(updated)
        return updated

    async def _notify_stopped(self, container: Container | None) -> None:
        """The stop hook, once per container: after its exit is recorded, however it ended,
        and after the start hooks (a start still telling plugins is waited for)."""
        sandbox = self._store.sandboxes.get(container.sandbox_id) if container else None
        if container is not None and sandbox is not None:
            async with self._notification_order(container.id):
                await self._hooks.stop_container(sandbox, container)

    def _notification_order(self, container_id: str) -> asyncio.Lock:
        return self._hook_order.setdefault(container_id, asyncio.Lock())

    # ---- stop and remove ----------------------------------------------------------------

    async def stop(self, container_id: str, *, timeout: float) -> None:  # noqa: ASYNC109
        """Stop with the image's stop signal, then SIGKILL after ``timeout`` s. Unknown ids
        and containers already stopped are fine (the CRI makes stop idempotent)."""
        container = self._store.containers.get(container_id)
        if container is None or container.state != ContainerState.RUNNING:
            return
        signal = self._stop_signal(container)
        try:
            exit = await self._tasks.stop(container_id, timeout=max(timeout, 0), signal=signal)
        except NotFound:
            return
        faults.point("container.stop.exited")
        await self.record_exit(exit)

    def _stop_signal(self, container: Container) -> int:
        """The config's stop signal, else the image's, else SIGTERM."""
        image = self._images.lookup(container.image_id)
        if image is None:
            return oci.parse_signal(container.config.stop_signal or "SIGTERM")
        config = manifests.parse_image_config(image.config_json.encode())
        return oci.stop_signal(config, container.config.stop_signal)

    async def stop_all(self, sandbox_id: str, *, timeout: float) -> None:  # noqa: ASYNC109
        containers = self._store.containers_of(sandbox_id)
        await asyncio.gather(*(self.stop(c.id, timeout=timeout) for c in containers))

    async def remove(self, container_id: str) -> None:
        """Force-stop and delete the container and everything of it. Unknown ids are fine."""
        container = self._store.containers.get(container_id)
        if container is None:
            return
        if container.state == ContainerState.RUNNING:
            await self.stop(container_id, timeout=self._settings.stop_timeout_on_remove)
        async with self._lock(container_id):
            current = self._store.containers.get(container_id) or container
            if current.pid:  # it became a task (a start that failed deleted its own)
                await self._delete_task(
                    container_id, pid=current.pid, exit_status=current.exit_code
                )
            else:
                await self._tasks.delete(container_id, force=True)
            faults.point("container.remove.task-deleted")
            await asyncio.to_thread(self._remove_files, container)
            faults.point("container.remove.files-removed")
            await asyncio.to_thread(self._store.containers.remove, container_id)
        sandbox = self._store.sandboxes.get(container.sandbox_id)
        if sandbox is not None:
            key = container_name_key(container.config, sandbox.config.metadata)
            self._store.names.release(key, container_id)
        else:
            self._store.names.release_owner(container_id)
        self._locks.pop(container_id, None)
        self._hook_order.pop(container_id, None)
        self._exchange.publish(
            ev.K8S_NAMESPACE,
            ev.ContainerDelete(container_id=container_id, sandbox_id=container.sandbox_id),
        )
        if sandbox is not None:
            await self._hooks.remove_container(sandbox, container)

    def _remove_files(self, container: Container) -> None:
        """The rootfs unmounted, its snapshot removed, id-mapped and image volumes unmounted,
        then the container's directory removed: one thread hop. Blocking."""
        directory = Path(container.bundle)
        self._rootfs.unmount(directory / "rootfs")
        rootfs_mod.remove_snapshot(self._sn, container.snapshot_key)
        idmapped_volumes.unmount_volumes(self._rootfs, directory=directory)
        if image_volumes.image_mounts(container.config.mounts):
            image_volumes.unmount_volumes(
                self._sn,
                self._rootfs,
                container_id=container.id,
                directory=directory,
                count=len(container.config.mounts),
            )
        self._dirs.remove(directory)

    async def remove_all(self, sandbox_id: str) -> None:
        for container in self._store.containers_of(sandbox_id):
            await self.remove(container.id)

    # ---- in a running container ---------------------------------------------------------

    def _running(
        self, container_id: str, action: ContainerAction = ContainerAction.EXEC
    ) -> Container:
        container = self.get(container_id)
        container_step(container.state, action, id=container_id)
        return container

    async def exec_sync(
        self,
        container_id: str,
        argv: list[str],
        *,
        timeout: float | None,  # noqa: ASYNC109 - the command's limit, not this call's
    ) -> ExecResult:
        self._running(container_id)
        return await self._tasks.exec_sync(container_id, argv, timeout=timeout)

    async def exec_session(
        self, container_id: str, argv: list[str], *, tty: bool, stdin: bool
    ) -> ExecSession:
        """An interactive exec in a running container; the caller releases it."""
        self._running(container_id)
        return await self._tasks.exec_session(container_id, argv, tty=tty, stdin=stdin)

    async def attach(self, container_id: str) -> AttachedStdio:
        """The running container's main process stdio (conmon's attach socket)."""
        self._running(container_id, ContainerAction.ATTACH)
        return await self._tasks.attach(container_id)

    async def resize(self, container_id: str, *, rows: int, cols: int) -> None:
        """Resize the container's terminal (through conmon's control FIFO)."""
        await self._tasks.resize(container_id, rows=rows, cols=cols)

    async def update_resources(
        self, container_id: str, resources: Resources, *, run_hooks: bool = True
    ) -> Container:
        """Apply new limits. ``run_hooks=False`` for an update an extension itself asked for
        (it is not told about its own change)."""
        container = self.get(container_id)
        step = container_step(container.state, ContainerAction.UPDATE, id=container_id)
        host_adj = await asyncio.to_thread(rootfs_mod.own_oom_score_adj)  # a /proc read
        applied = oci.applicable_resources(
            resources,
            self._settings.host_resources,
            tolerate_missing_hugetlb=self._settings.tolerate_missing_hugetlb_controller,
            host_oom_score_adj=host_adj,
        )
        assert applied is not None
        sandbox = self._store.sandboxes.get(container.sandbox_id) if run_hooks else None
        if sandbox is not None:  # plugins may adjust what is applied
            applied = await self._hooks.update_container(sandbox, container, applied)
        resources = applied
        if container.state == ContainerState.RUNNING:
            body = oci.resources_spec(resources, cgroup_v2=self._settings.cgroup_v2)
            await self._tasks.update(container_id, body)
        else:  # not a task yet: the new limits go into the spec it will start with
            await asyncio.to_thread(
                oci.update_spec_resources,
                Path(container.bundle) / "config.json",
                resources,
                cgroup_v2=self._settings.cgroup_v2,
            )
        updated = await self._transition(
            container_id, lambda c: dataclasses.replace(c, resources=resources)
        )
        self._publish(step, ev.ContainerUpdate(container_id=container_id))
        assert updated is not None
        if sandbox is not None:
            await self._hooks.post_update_container(sandbox, updated)
        return updated

    async def reopen_log(self, container_id: str) -> None:
        self._running(container_id, ContainerAction.REOPEN_LOG)
        await self._tasks.reopen_log(container_id)

    def cgroup_path(self, container: Container) -> str | None:
        sandbox = self._store.sandboxes.get(container.sandbox_id)
        if sandbox is None:
            return None
        return self._sandboxes.cgroups_path(sandbox, container.id)

    def read_cgroup(self, path: str, *, brief: bool = False) -> CgroupStats | None:
        """Blocking: the cgroup's figures, or None where it does not exist (any more);
        ``brief``: CPU and memory only (see ``read_stats``)."""
        if self._cgroups is None:
            return None
        try:
            return read_stats(self._cgroups, path, brief=brief)
        except (OSError, NotFound):
            return None

    def read_pressures(self, path: str) -> Pressures | None:
        """Blocking: the cgroup's pressure stall information, None where unknown."""
        if self._cgroups is None:
            return None
        try:
            return read_pressures(self._cgroups, path)
        except (OSError, InvalidArgument):
            return None

    def read_cgroup_detail(self, path: str) -> CgroupDetail | None:
        """Blocking: every figure of the cgroup the metrics show, None where unknown."""
        if self._cgroups is None:
            return None
        try:
            return read_detail(self._cgroups, path)
        except (OSError, NotFound, InvalidArgument):
            return None

    def layer_keys(self) -> dict[str, str]:
        """Container id → snapshot key of every container that has a writable layer."""
        return {c.id: c.snapshot_key for c in self._store.containers.all() if c.snapshot_key}

    def writable_dir(self, snapshot_key: str) -> Path | None:
        """Blocking: the writable (upper) directory of a container's snapshot, None once the
        snapshot is gone."""
        try:
            return self._sn.layer_dir(snapshot_key)
        except (NotFound, FailedPrecondition, OSError):
            return None

    # ---- after a restart ----------------------------------------------------------------

    async def reconcile(self, recovered: Mapping[str, RecoveredTask]) -> None:
        """Records against the tasks found alive or exited after a restart; tasks and
        container directories that no record owns (a crash mid-create) are removed. A
        container that cannot be reconciled is logged and reported lost, never fatal."""
        known = {c.id for c in self._store.containers.all()}
        sandbox_ids = {s.id for s in self._store.sandboxes.all()}
        for task_id in recovered:
            if task_id not in known and task_id not in sandbox_ids:
                log.info("deleting task %s that no container owns", task_id)
                try:
                    await self._tasks.delete(task_id, force=True)
                except Exception:
                    log.exception("could not delete task %s that no container owns", task_id)
        base = self._settings.state_dir / "containers"
        if base.is_dir():
            for directory in base.iterdir():
                if directory.name not in known:
                    try:
                        await self._remove_leftover(directory)
                    except Exception:
                        log.exception("could not remove the remains of container %s", directory)
        for container in self._store.containers.all():
            if container.sandbox_id not in sandbox_ids:
                # its sandbox's record was lost (a damaged database): nothing can run it again
                log.warning("removing container %s of a sandbox no longer known", container.id)
                try:
                    await self.remove(container.id)
                except Exception:
                    log.exception("could not remove container %s", container.id)
                continue
            try:
                await self._reconcile_one(container, recovered.get(container.id))
            except Exception as exc:
                log.exception("recovery of container %s failed", container.id)
                with contextlib.suppress(Exception):
                    await self._lost(container.id, f"its recovery failed: {exc}")

    async def _remove_leftover(self, directory: Path) -> None:
        await asyncio.to_thread(self._rootfs.unmount, directory / "rootfs")
        await asyncio.to_thread(
            functools.partial(idmapped_volumes.unmount_volumes, self._rootfs, directory=directory)
        )
        await asyncio.to_thread(
            functools.partial(
                image_volumes.unmount_volumes,
                self._sn,
                self._rootfs,
                container_id=directory.name,
                directory=directory,
                count=-1,
            )
        )
        await asyncio.to_thread(rootfs_mod.remove_snapshot, self._sn, f"container-{directory.name}")
        await asyncio.to_thread(self._dirs.remove, directory)

    async def _reconcile_one(self, container: Container, task: RecoveredTask | None) -> None:
        if container.state not in (ContainerState.RUNNING, ContainerState.CREATED):
            return
        if task is None:
            if container.state == ContainerState.RUNNING:
                await self._lost(container.id, "its task was not found after pinnaced restarted")
            return
        if task.exit is not None:
            await self.record_exit(task.exit)
        elif container.state == ContainerState.CREATED and task.conmon_alive:
            await self._finish_cut_start(container, task)
        elif not task.conmon_alive:
            await self._tasks.delete(container.id, force=True)
            await self._lost(container.id, "its conmon died while pinnaced was down")

    async def _finish_cut_start(self, container: Container, task: RecoveredTask) -> None:
        """A StartContainer cut short by a crash left a task behind a CREATED record: if its
        process runs, the record says so now; if it was never started, it stays, and
        the retried start runs that task."""
        if await self._tasks.state(container.id) == TaskState.RUNNING:
            log.info("container %s was started before pinnaced stopped: RUNNING", container.id)
            await self._transition(
                container.id,
                lambda c: dataclasses.replace(
                    c,
                    state=ContainerState.RUNNING,
                    started_at=task.info.created_at,
                    pid=task.info.pid,
                ),
            )
            return
        # created, never started: kept, and the retried StartContainer starts it
        log.info("container %s has a created task; a start will run it", container.id)

    async def _lost(self, container_id: str, why: str) -> None:
        """Record a container whose fate is unknown as EXITED (255, Unknown); a no-op for one
        already exited."""
        await self._transition(
            container_id,
            lambda c: (
                None
                if not (step := container_step(c.state, ContainerAction.LOST, id=c.id)).changes
                else dataclasses.replace(
                    c,
                    state=step.state,
                    finished_at=now_ns(),
                    exit_code=255,
                    reason="Unknown",
                    message=f"container lost: {why}",
                )
            ),
        )


def _step_if_allowed(container: Container, action: ContainerAction) -> Step[ContainerState] | None:
    """The table's row for ``action`` in the container's state, or None where it has none
    (a race the caller resolves itself, such as an exit recorded before the start)."""
    try:
        return container_step(container.state, action, id=container.id)
    except FailedPrecondition:
        return None


def _check_userns(sandbox: Sandbox, config: ContainerConfig) -> None:
    """A container is in its pod's user namespace: its ``userns_options`` (the kubelet sends
    the pod's on every container) must be the pod's, as containerd requires; and only mounts
    the pod can id-map may ask to be (:func:`idmapped_volumes.check`)."""
    pod = sandbox.config.security.namespaces.userns
    own = config.security.namespaces.userns
    if own != pod:

        def shown(u: UserNamespace | None) -> str:
            if u is None:
                return "mode NODE (or unset)"
            return "mode POD, uids {}, gids {}".format(
                *(
                    ",".join(f"{m.container_id}:{m.host_id}:{m.length}" for m in ms)
                    for ms in (u.uids, u.gids)
                )
            )

        raise InvalidArgument(
            "linux.security_context.namespace_options.userns_options: the container's user "
            f"namespace ({shown(own)}) is not its pod's ({shown(pod)}); a container runs in its "
            "pod's user namespace: send the pod's userns_options"
        )
    idmapped_volumes.check(config.mounts, pod)


def _log_path(sandbox: Sandbox, config: ContainerConfig) -> Path | None:
    if not config.log_path or not sandbox.config.log_directory:
        return None
    return Path(sandbox.config.log_directory) / config.log_path


def _sandbox_files(sandbox: Sandbox) -> oci.SandboxFiles:
    directory = Path(sandbox.state_dir)
    host_ipc = sandbox.config.security.namespaces.ipc == NamespaceMode.NODE
    return oci.SandboxFiles(
        hostname=directory / "hostname",
        hosts=directory / "hosts",
        resolv_conf=directory / "resolv.conf",
        shm=Path("/dev/shm") if host_ipc else directory / "shm",
    )
