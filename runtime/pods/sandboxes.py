"""The sandbox controller: RunPodSandbox, StopPodSandbox and RemovePodSandbox in domain terms.

A sandbox's life, and what each step leaves on the node (undone in reverse on failure)::

    run:    state dir ─► pinned net/ipc/uts namespaces ─► hostname, hosts, resolv.conf
            ─► /dev/shm tmpfs ─► sysctls ─► [infra task, only for a shared PID namespace]
            ─► [network attached through the event exchange] ─► record (READY)
    stop:   [network detached] ─► infra stopped ─► namespaces unpinned, shm unmounted
            ─► record (NOTREADY)
    remove: stop ─► infra rootfs and snapshot removed ─► state dir removed ─► record removed

The record is written last on ``run``, so a daemon that crashes half-way leaves a state
directory with no record, which ``reconcile`` removes at the next start. A create that outlives
its caller keeps going; the caller's retry with the same pod metadata receives its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from runtime import faults, oci
from runtime.aio import shielded
from runtime.cgroups import CgroupDriver, CgroupMounts
from runtime.cgroups import remove as remove_cgroup
from runtime.cgroups.limits import apply_limits, pod_limits
from runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PinnaceError,
    Unimplemented,
)
from runtime.events import types as ev
from runtime.events.exchange import Exchange
from runtime.images import manifest as manifests
from runtime.images.store import ImageRecord
from runtime.model.lifecycle import SandboxAction, sandbox_step
from runtime.model.pods import NamespaceMode, Resources, Sandbox, SandboxConfig, SandboxState
from runtime.mount import Mount
from runtime.oci import lsm
from runtime.pods import rootfs as rootfs_mod
from runtime.pods.creations import Creations
from runtime.pods.files import write_sandbox_files
from runtime.pods.hooks import NoHooks, PodHooks
from runtime.pods.interfaces import (
    BundleDirs,
    ImageSource,
    PodNamespaces,
    RootfsMounts,
    TaskService,
)
from runtime.pods.network import EventNetwork
from runtime.pods.settings import PodSettings
from runtime.pods.store import PodStore, sandbox_name_key
from runtime.sandbox.namespaces import NamespaceKind
from runtime.snapshots.interfaces import Snapshotter
from runtime.tasks.interfaces import TaskSpec

log = logging.getLogger(__name__)

NAMESPACE = ev.K8S_NAMESPACE  # an alias of the one constant (older callers import it here)


def new_id() -> str:
    return secrets.token_hex(32)


def now_ns() -> int:
    return time.time_ns()


class SandboxController:
    """Creates, stops and removes pod sandboxes."""

    def __init__(
        self,
        *,
        store: PodStore,
        tasks: TaskService,
        images: ImageSource,
        snapshotter: Snapshotter,
        exchange: Exchange,
        settings: PodSettings,
        cgroups: CgroupMounts | None,
        network: EventNetwork | None = None,
        rootfs: RootfsMounts | None = None,
        dirs: BundleDirs | None = None,
        hooks: PodHooks | None = None,
        namespaces: PodNamespaces | None = None,
    ) -> None:
        self._store = store
        # RunPodSandbox calls under way: their pods' cgroups will live under the shared parent.
        self._creating = 0
        self._hooks: PodHooks = hooks or NoHooks()
        self._tasks = tasks
        self._images = images
        self._sn = snapshotter
        self._exchange = exchange
        self._settings = settings
        self._cgroups = cgroups
        self._rootfs: RootfsMounts = rootfs or rootfs_mod.HostRootfs()
        self._dirs: BundleDirs = dirs or rootfs_mod.HostDirs()
        self._ns: PodNamespaces = namespaces or rootfs_mod.HostNamespaces()
        self._network = network
        self._creations: Creations[Sandbox] = Creations(store.names, "pod sandbox")
        self._locks: dict[str, asyncio.Lock] = {}

    def _dir(self, sandbox_id: str) -> Path:
        return self._settings.state_dir / "sandboxes" / sandbox_id

    def lock(self, sandbox_id: str) -> asyncio.Lock:
        """The lock that orders stop and remove of one sandbox (never held across pods)."""
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    # ---- run ----------------------------------------------------------------------------

    async def run(self, config: SandboxConfig) -> Sandbox:
        handler = self._settings.handler(config.runtime_handler)
        if handler not in self._settings.handlers:
            raise InvalidArgument(
                f"runtime handler {handler!r} is not configured; configured handlers: "
                f"{', '.join(self._settings.handlers)}"
            )
        why_not = self._settings.features(handler).user_namespaces_unavailable
        if config.security.namespaces.userns is not None and why_not:
            raise Unimplemented(
                f"runtime handler {handler!r} cannot run pods in their own user namespace "
                f"(userns_options mode POD) on this node: {why_not}; use hostUsers: true "
                "(mode NODE)"
            )
        lsm.apparmor_profile(  # refuses a profile the host cannot apply, before any work
            config.security.apparmor,
            host=self._settings.security_modules,
            privileged=config.security.privileged,
            what=f"pod {config.metadata.namespace}/{config.metadata.name}",
        )
        return await self._creations.create_once(
            sandbox_name_key(config.metadata),
            new_id(),
            lambda sandbox_id: self._create(sandbox_id, config, handler),
            existing=self._store.sandboxes.get,
            same=lambda sandbox: sandbox.config == config,
        )

    async def _create(self, sandbox_id: str, config: SandboxConfig, handler: str) -> Sandbox:
        directory = self._dir(sandbox_id)
        undo = contextlib.AsyncExitStack()
        self._creating += 1
        try:
            sandbox = await self._build(sandbox_id, config, handler, directory, undo)
            # Before the record is stored: until the plugins agree, the pod is invisible.
            await self._hooks.run_pod_sandbox(sandbox)
            await asyncio.to_thread(self._store.put_sandbox, sandbox)
            faults.point("sandbox.run.recorded")
        except BaseException:
            self._creating -= 1  # first: the undo's cgroup removal may then tidy the parent
            await shielded(undo.aclose())
            await shielded(asyncio.to_thread(self._dirs.remove, directory))
            raise
        self._creating -= 1
        undo.pop_all()
        # the record is written: the sandbox exists (create) and is ready (start)
        self._exchange.publish(ev.K8S_NAMESPACE, ev.SandboxCreate(sandbox_id=sandbox_id))
        self._exchange.publish(ev.K8S_NAMESPACE, ev.SandboxStart(sandbox_id=sandbox_id))
        log.info(
            "sandbox %s (%s/%s) ready",
            sandbox_id[:12],
            config.metadata.namespace,
            config.metadata.name,
        )
        return sandbox

    async def _build(
        self,
        sandbox_id: str,
        config: SandboxConfig,
        handler: str,
        directory: Path,
        undo: contextlib.AsyncExitStack,
    ) -> Sandbox:
        ns = config.security.namespaces
        host_network = ns.network == NamespaceMode.NODE
        host_ipc = ns.ipc == NamespaceMode.NODE
        if ns.network == NamespaceMode.TARGET or ns.ipc == NamespaceMode.TARGET:
            raise InvalidArgument("pod namespaces cannot be of mode TARGET (containers only)")
        await asyncio.to_thread(self._dirs.make, directory, exist_ok=False)
        faults.point("sandbox.run.dir-created")
        if ns.userns is not None:
            await asyncio.to_thread(rootfs_mod.check_traversable, directory / "rootfs")

        kinds: set[NamespaceKind] = set()
        if not host_network:
            kinds |= {NamespaceKind.NET, NamespaceKind.UTS}
        if not host_ipc:
            kinds.add(NamespaceKind.IPC)
        paths: dict[str, str] = {}
        userns = ns.userns
        if kinds:
            hostname = config.hostname if NamespaceKind.UTS in kinds and config.hostname else None
            if userns is not None:
                # network, IPC and UTS owned by the pod's user namespace (translate made sure
                # none is the node's)
                user, pinned = await self._ns.pin_user(
                    directory / "ns", kinds=frozenset(kinds), hostname=hostname, userns=userns
                )
                paths["user"] = str(user)
            else:
                pinned = await self._ns.pin(
                    directory / "ns", kinds=frozenset(kinds), hostname=hostname
                )
            undo.push_async_callback(self._ns.unpin, directory / "ns")
            faults.point("sandbox.run.namespaces-pinned")
            paths.update({kind.value: str(path) for kind, path in pinned.paths.items()})
            if config.sysctls:
                await self._ns.sysctls(pinned.paths, config.sysctls)
        elif config.sysctls:
            raise InvalidArgument(
                "sysctls need the pod's own network or IPC namespace; this pod uses the node's"
            )

        hostname = config.hostname or (os.uname().nodename if host_network else "")
        await asyncio.to_thread(
            write_sandbox_files,
            directory,
            hostname=hostname,
            dns=config.dns,
            host_network=host_network,
        )
        if not host_ipc:
            shm = directory / "shm"
            await asyncio.to_thread(self._mount_shm, shm)
            undo.push_async_callback(asyncio.to_thread, self._rootfs.unmount, shm)
        if userns is not None:
            await asyncio.to_thread(
                rootfs_mod.give_to,
                [directory / n for n in ("hostname", "hosts", "resolv.conf", "shm")],
                userns.root,
            )

        cgroup_parent = (
            config.cgroup_parent or f"{self._settings.default_cgroup_parent}/{sandbox_id}"
        )
        sandbox = Sandbox(
            id=sandbox_id,
            config=config,
            state=SandboxState.READY,
            created_at=now_ns(),
            runtime_handler=handler,
            namespace_paths=paths,
            cgroup_parent=cgroup_parent,
            hostname=hostname,
            state_dir=str(directory),
        )
        if not config.cgroup_parent:
            undo.push_async_callback(self._remove_cgroup, cgroup_parent)

        if ns.pid == NamespaceMode.POD or self._settings.always_infra:
            pid = await self._start_infra(sandbox, undo)
            sandbox = dataclasses.replace(
                sandbox,
                infra_container_id=sandbox_id,
                infra_pid=pid,
                namespace_paths={**paths, "pid": f"/proc/{pid}/ns/pid"},
            )

        if not host_network and self._network is not None:
            # on failure the manager has rolled its ADD back; a detach after an attach that
            # failed half-way releases whatever is left (DEL is idempotent)
            undo.push_async_callback(self._network.detach, sandbox)
            ips = await self._network.attach(sandbox)
            faults.point("sandbox.run.network-attached")
            sandbox = dataclasses.replace(
                sandbox, ip=ips[0] if ips else "", additional_ips=tuple(ips[1:])
            )
        return sandbox

    def mount_rootfs(self, sandbox: Sandbox, snapshot_mounts: Any, target: Path) -> None:
        """Mount a rootfs of one of ``sandbox``'s containers (or its infra): id-mapped
        through the pod's user namespace when it has one. Blocking."""
        userns = sandbox.config.security.namespaces.userns
        user = sandbox.namespace_paths.get("user")
        if userns is None or not user:
            self._rootfs.mount(snapshot_mounts, target)
            return
        self._rootfs.mount_idmapped(snapshot_mounts, target, userns=Path(user), root=userns.root)

    def _mount_shm(self, target: Path) -> None:
        self._dirs.make(target)
        options = ("nosuid", "nodev", "noexec", "mode=1777", f"size={self._settings.shm_size}")
        self._rootfs.mount([Mount("tmpfs", "shm", options)], target)

    async def _sandbox_image(self, sandbox: Sandbox) -> ImageRecord:
        name = self._settings.sandbox_image
        record = self._images.find(name)
        if record is None:
            log.info("pulling sandbox image %s", name)
            try:
                record = await self._images.pull(name)
            except PinnaceError as exc:
                # "cannot reach registry registry.k8s.io" alone leaves a user asking why a pod
                # of busybox containers went there
                why = (
                    "the pod shares one PID namespace"
                    if sandbox.config.security.namespaces.pid == NamespaceMode.POD
                    else "runtime.always_infra is set"
                )
                raise _in_context(
                    exc, f"sandbox image {name} (images.sandbox_image; an infra container: {why})"
                ) from exc
        return record

    async def _start_infra(self, sandbox: Sandbox, undo: contextlib.AsyncExitStack) -> int:
        """Run the infra (pause) process that holds the pod's shared PID namespace."""
        image = await self._sandbox_image(sandbox)
        directory = Path(sandbox.state_dir)
        rootfs = directory / "rootfs"
        key = f"sandbox-{sandbox.id}"
        snapshot_mounts = await asyncio.to_thread(self._sn.prepare, key, image.chain_id)
        undo.push_async_callback(asyncio.to_thread, rootfs_mod.remove_snapshot, self._sn, key)
        await asyncio.to_thread(self.mount_rootfs, sandbox, snapshot_mounts, rootfs)
        undo.push_async_callback(asyncio.to_thread, self._rootfs.unmount, rootfs)
        spec = await asyncio.to_thread(  # file work: the image's passwd, oom_score_adj
            lambda: oci.build_infra_spec(
                sandbox=sandbox,
                image=manifests.parse_image_config(image.config_json.encode()),
                rootfs=rootfs,
                cgroups_path=self.cgroups_path(sandbox, sandbox.id),
                namespace_paths=sandbox.namespace_paths,
                host_oom_score_adj=rootfs_mod.own_oom_score_adj(),
                cgroup_v2=self._settings.cgroup_v2,
                image_name=image.repo_tags[0] if image.repo_tags else image.id,
                security_modules=self._settings.security_modules,
            )
        )
        await asyncio.to_thread(oci.write_spec, directory / "config.json", spec)
        task = TaskSpec(
            id=sandbox.id,
            bundle=directory,
            runtime=sandbox.runtime_handler,
            log_path=directory / "infra.log",
        )
        info = await self._tasks.create(task)
        self._exchange.publish(
            ev.K8S_NAMESPACE, ev.TaskCreate(container_id=sandbox.id, pid=info.pid)
        )
        undo.push_async_callback(self._delete_infra_task, sandbox.id, info.pid)
        await self._tasks.start(sandbox.id)
        return info.pid

    async def _delete_infra_task(self, task_id: str, pid: int) -> None:
        """Delete the infra task and say so (/tasks/delete) once it is gone."""
        await self._tasks.delete(task_id, force=True)
        self._exchange.publish(ev.K8S_NAMESPACE, ev.TaskDelete(container_id=task_id, pid=pid))

    def cgroups_path(self, sandbox: Sandbox, name: str) -> str:
        """Where a task of this pod (its infra or a container ``name``) has its cgroup."""
        if self._settings.cgroup_driver == CgroupDriver.SYSTEMD:
            parent = sandbox.config.cgroup_parent or "system.slice"
            return f"{parent}:pinnace:{name}"
        return f"{sandbox.cgroup_parent}/{name}"

    async def _remove_cgroup(self, path: str) -> None:
        """Remove a pod cgroup pinnace made (the default parent), and the shared parent above
        it once no pod may need it: with another pod recorded or being made, runc could be
        creating a cgroup under the parent right then, and an rmdir between its mkdirs fails
        that container's start (seen with 8 concurrent clients)."""
        if self._cgroups is not None and self._settings.cgroup_driver == CgroupDriver.CGROUPFS:
            await asyncio.to_thread(_remove_cgroup_quietly, self._cgroups, path)
            parent = self._settings.default_cgroup_parent
            others = any(s.cgroup_parent != path for s in self._store.sandboxes.all())
            if path.startswith(parent + "/") and not others and self._creating == 0:
                await asyncio.to_thread(_rmdir_quietly, self._cgroups, parent)

    # ---- in-place resize ------------------------------------------------------------------

    def owns_cgroup(self, sandbox: Sandbox) -> bool:
        """Whether the pod's cgroup parent is pinnace's to limit (the kubelet gave none, and
        the cgroupfs driver names it); a parent the kubelet gave is the kubelet's."""
        return (
            not sandbox.config.cgroup_parent
            and self._settings.cgroup_driver == CgroupDriver.CGROUPFS
            and self._cgroups is not None
        )

    async def update_resources(
        self, sandbox_id: str, *, overhead: Resources | None, resources: Resources | None
    ) -> Sandbox:
        """The kubelet's in-place pod resize: write the pod's new limits into its cgroup where
        pinnace owns it, then record them in the sandbox's config (what PodSandboxStatus's
        verbose info and the stats' available memory report)."""
        if self._store.sandboxes.get(sandbox_id) is None:
            raise NotFound(f"pod sandbox {sandbox_id} not found")
        async with self.lock(sandbox_id):
            sandbox = self._store.sandboxes.get(sandbox_id)
            if sandbox is None:
                raise NotFound(f"pod sandbox {sandbox_id} was removed")
            # a figure the request leaves out keeps its previous value
            overhead = overhead if overhead is not None else sandbox.config.overhead
            resources = resources if resources is not None else sandbox.config.resources
            await self._hooks.update_pod_sandbox(sandbox, overhead=overhead, resources=resources)
            limits = pod_limits(resources, overhead)
            if limits is not None and self.owns_cgroup(sandbox):
                assert self._cgroups is not None
                written = await asyncio.to_thread(
                    apply_limits, self._cgroups, sandbox.cgroup_parent, limits
                )
                log.debug("sandbox %s: pod cgroup limits %s", sandbox_id[:12], written)
            config = dataclasses.replace(sandbox.config, overhead=overhead, resources=resources)
            updated = dataclasses.replace(sandbox, config=config)
            await asyncio.to_thread(self._store.put_sandbox, updated)
        await self._hooks.post_update_pod_sandbox(updated)
        return updated

    # ---- stop and remove -------------------------------------------------------------------

    async def stop(self, sandbox_id: str) -> Sandbox | None:
        """Release the sandbox's resources, keeping its record (NOTREADY). The caller has
        stopped the pod's containers. Unknown ids are fine (None)."""
        sandbox = self._store.sandboxes.get(sandbox_id)
        if sandbox is None:
            return None
        if sandbox.state == SandboxState.READY:  # its containers are stopped, still listed
            await self._hooks.stop_pod_sandbox(sandbox)
        directory = Path(sandbox.state_dir)
        if "net" in sandbox.namespace_paths and self._network is not None:
            if sandbox.state == SandboxState.READY:
                await self._network.detach(sandbox)
                faults.point("sandbox.stop.network-detached")
        if sandbox.infra_container_id:
            with contextlib.suppress(NotFound):
                await self._tasks.stop(sandbox.infra_container_id, timeout=0)
        await self._ns.unpin(directory / "ns")
        faults.point("sandbox.stop.unpinned")
        await asyncio.to_thread(self._rootfs.unmount, directory / "shm")
        step = sandbox_step(sandbox.state, SandboxAction.STOP, id=sandbox_id)
        stopped = dataclasses.replace(
            sandbox, state=step.state, infra_pid=0, ip="", additional_ips=()
        )
        if stopped != sandbox:
            await asyncio.to_thread(self._store.put_sandbox, stopped)
            if step.topic == ev.SandboxStop.topic:
                self._exchange.publish(ev.K8S_NAMESPACE, ev.SandboxStop(sandbox_id=sandbox_id))
        return stopped

    async def remove(self, sandbox_id: str) -> None:
        """Delete everything of a stopped sandbox, and its record. Unknown ids are fine."""
        sandbox = self._store.sandboxes.get(sandbox_id)
        if sandbox is None:
            return
        sandbox = await self.stop(sandbox_id) or sandbox
        faults.point("sandbox.remove.stopped")
        directory = Path(sandbox.state_dir)
        if sandbox.infra_container_id:
            await self._delete_infra_task(sandbox.infra_container_id, 0)
        await asyncio.to_thread(self._remove_files, sandbox_id, directory)
        faults.point("sandbox.remove.files-removed")
        if not sandbox.config.cgroup_parent:
            await self._remove_cgroup(sandbox.cgroup_parent)
        await asyncio.to_thread(self._store.sandboxes.remove, sandbox_id)
        self._store.names.release(sandbox_name_key(sandbox.config.metadata), sandbox_id)
        self._locks.pop(sandbox_id, None)
        self._exchange.publish(ev.K8S_NAMESPACE, ev.SandboxDelete(sandbox_id=sandbox_id))
        await self._hooks.remove_pod_sandbox(sandbox)

    def _remove_files(self, sandbox_id: str, directory: Path) -> None:
        """The infra rootfs unmounted and its snapshot removed, then the state directory: one
        thread hop. Blocking."""
        self._rootfs.unmount(directory / "rootfs")
        rootfs_mod.remove_snapshot(self._sn, f"sandbox-{sandbox_id}")
        self._dirs.remove(directory)

    # ---- after a restart ------------------------------------------------------------------

    async def reconcile(self, live_tasks: dict[str, Any]) -> None:
        """Bring records in line with the node after a daemon restart: a READY sandbox whose
        namespaces or infra process are gone is NOTREADY; state directories without a record
        (a crash during a create) are torn down. One sandbox that cannot be reconciled is
        logged and left NOTREADY; it never keeps the daemon from starting."""
        known = {s.id for s in self._store.sandboxes.all()}
        base = self._settings.state_dir / "sandboxes"
        leftovers = [p for p in base.iterdir() if p.name not in known] if base.is_dir() else []
        for directory in leftovers:
            try:
                await self._remove_leftover(directory, live_tasks)
            except Exception:
                log.exception("could not remove the remains of sandbox %s", directory.name)
        sandboxes = self._store.sandboxes.all()
        # every READY pod's pins, from one read of the mount table
        pinned = await asyncio.to_thread(
            self._ns.pinned_among, [p for s in sandboxes for p in _pin_paths(s)]
        )
        for sandbox in sandboxes:
            try:
                await self._reconcile_one(sandbox, live_tasks, pinned)
            except Exception as exc:
                log.exception("recovery of sandbox %s failed; marking it NOTREADY", sandbox.id)
                await self._mark_notready(sandbox, f"recovery failed: {exc}")

    async def _remove_leftover(self, directory: Path, live_tasks: dict[str, Any]) -> None:
        log.info("removing the remains of sandbox %s (it has no record)", directory.name)
        await self._tasks.delete(directory.name, force=True)
        # tasks in the pod's cgroup (its containers, when their records are lost too): their
        # cgroups would keep the pod's from being removed
        pod_cgroup = f"{self._settings.default_cgroup_parent}/{directory.name}/"
        for task_id in list(live_tasks):
            with contextlib.suppress(NotFound):
                if (self._tasks.cgroups_path(task_id) or "").startswith(pod_cgroup):
                    log.info("deleting task %s of sandbox %s", task_id, directory.name)
                    await self._tasks.delete(task_id, force=True)
        netns = directory / "ns" / "net"
        if self._network is not None and netns.exists():
            try:
                await self._network.detach_orphan(directory.name, str(netns))
            except PinnaceError as exc:
                log.warning("network of leftover sandbox %s: %s", directory.name, exc)
        await self._ns.unpin(directory / "ns")
        for sub in ("shm", "rootfs"):
            await asyncio.to_thread(self._rootfs.unmount, directory / sub)
        await asyncio.to_thread(rootfs_mod.remove_snapshot, self._sn, f"sandbox-{directory.name}")
        await asyncio.to_thread(self._dirs.remove, directory)
        # the cgroup pinnace would have made for it (a parent kubelet gave is kubelet's)
        await self._remove_cgroup(f"{self._settings.default_cgroup_parent}/{directory.name}")

    async def _reconcile_one(
        self, sandbox: Sandbox, live_tasks: dict[str, Any], pinned: set[Path]
    ) -> None:
        if sandbox.state != SandboxState.READY:
            # a stop may have been cut short after the network was detached
            await self._ns.unpin(Path(sandbox.state_dir) / "ns")
            await asyncio.to_thread(self._rootfs.unmount, Path(sandbox.state_dir) / "shm")
            return
        pins_ok = all(p in pinned for p in _pin_paths(sandbox))
        infra = live_tasks.get(sandbox.infra_container_id) if sandbox.infra_container_id else None
        infra_ok = not sandbox.infra_container_id or (
            infra is not None and infra.exit is None and infra.conmon_alive
        )
        if pins_ok and infra_ok:
            if infra is not None and infra.info.pid != sandbox.infra_pid:
                sandbox = dataclasses.replace(sandbox, infra_pid=infra.info.pid)
                await asyncio.to_thread(self._store.put_sandbox, sandbox)
            return
        log.warning("sandbox %s lost its namespaces or infra process: NOTREADY", sandbox.id)
        await self.stop(sandbox.id)

    async def _mark_notready(self, sandbox: Sandbox, why: str) -> None:
        """Record a sandbox recovery could not bring back as NOTREADY (best effort)."""
        current = self._store.sandboxes.get(sandbox.id)
        if current is None:
            return
        step = sandbox_step(current.state, SandboxAction.STOP, id=current.id)
        if not step.changes:
            return
        try:
            await asyncio.to_thread(
                self._store.put_sandbox, dataclasses.replace(current, state=step.state)
            )
        except Exception:
            log.exception("could not record sandbox %s as NOTREADY (%s)", sandbox.id, why)


def _pin_paths(sandbox: Sandbox) -> list[Path]:
    """The namespace files a READY sandbox must still have pinned (its pid namespace is its
    infra process's, not a pin)."""
    if sandbox.state != SandboxState.READY:
        return []
    return [Path(path) for kind, path in sandbox.namespace_paths.items() if kind != "pid"]


def _rmdir_quietly(cgroups: CgroupMounts, path: str) -> None:
    for directory in cgroups.hierarchy_dirs(path):
        with contextlib.suppress(OSError):
            directory.rmdir()


def _remove_cgroup_quietly(cgroups: CgroupMounts, path: str) -> None:
    try:
        remove_cgroup(cgroups, path)
    except (OSError, FailedPrecondition) as exc:
        log.warning("pod cgroup %s not removed: %s", path, exc)


def _in_context(exc: PinnaceError, context: str) -> PinnaceError:
    """``exc`` as the same kind of error with ``context`` before its message (a
    ``RegistryUnavailable`` keeps the prefix kubelet reads first); ``exc`` itself where its
    kind is not built from a message alone."""
    message = str(exc).removeprefix("RegistryUnavailable:").strip()
    try:
        return type(exc)(f"{context}: {message}")
    except TypeError:
        return exc
