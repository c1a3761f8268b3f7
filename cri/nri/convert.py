"""Runtime records ↔ NRI messages. Pure.

A container is described to plugins from its OCI spec (what it will really run with: args,
env, mounts, hooks, devices, resources, rlimits), as containerd does; pods from their
records. The ``io.kubernetes.cri.*`` annotations pinnace writes into the spec are shown like
containerd shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cri.api.nri.v1alpha1 import api_pb2 as npb
from runtime.model.pods import Container, ContainerState, HugepageLimit, Resources, Sandbox

_STATES = {
    ContainerState.CREATED: npb.CONTAINER_CREATED,
    ContainerState.RUNNING: npb.CONTAINER_RUNNING,
    ContainerState.EXITED: npb.CONTAINER_STOPPED,
    ContainerState.UNKNOWN: npb.CONTAINER_UNKNOWN,
}


def pod_sandbox(sandbox: Sandbox) -> npb.PodSandbox:
    meta = sandbox.config.metadata
    pod = npb.PodSandbox(
        id=sandbox.id,
        name=meta.name,
        uid=meta.uid,
        namespace=meta.namespace,
        labels=dict(sandbox.config.labels),
        annotations=dict(sandbox.config.annotations),
        runtime_handler=sandbox.runtime_handler,
        pid=sandbox.infra_pid,
        ips=[ip for ip in (sandbox.ip, *sandbox.additional_ips) if ip],
    )
    pod.linux.cgroup_parent = sandbox.cgroup_parent
    pod.linux.cgroups_path = sandbox.cgroup_parent
    for kind, path in sorted(sandbox.namespace_paths.items()):
        pod.linux.namespaces.add(type=_NS_TYPES.get(kind, kind), path=path)
    if sandbox.config.overhead is not None:
        pod.linux.pod_overhead.CopyFrom(linux_resources(sandbox.config.overhead))
    if sandbox.config.resources is not None:
        pod.linux.pod_resources.CopyFrom(linux_resources(sandbox.config.resources))
    return pod


_NS_TYPES = {"net": "network", "ipc": "ipc", "uts": "uts", "pid": "pid", "mnt": "mount"}


def container(c: Container, spec: Mapping[str, Any] | None) -> npb.Container:
    """The NRI view of ``c``; ``spec`` is its OCI spec (None when it cannot be read)."""
    spec = spec or {}
    process = spec.get("process", {})
    linux = spec.get("linux", {})
    out = npb.Container(
        id=c.id,
        pod_sandbox_id=c.sandbox_id,
        name=c.config.name,
        state=_STATES[c.state],
        labels=dict(c.config.labels),
        annotations=dict(spec.get("annotations") or c.config.annotations),
        args=list(process.get("args", [])),
        env=list(process.get("env", [])),
        pid=c.pid,
        created_at=c.created_at,
        started_at=c.started_at,
        finished_at=c.finished_at,
        exit_code=c.exit_code,
        status_reason=c.reason,
        status_message=c.message,
    )
    for m in spec.get("mounts", []):
        out.mounts.add(
            destination=m.get("destination", ""),
            type=m.get("type", ""),
            source=m.get("source", ""),
            options=list(m.get("options", [])),
        )
    for name, hooks in (spec.get("hooks") or {}).items():
        field = _HOOK_FIELDS.get(name)
        if field is None:
            continue
        for h in hooks:
            hook = getattr(out.hooks, field).add(
                path=h.get("path", ""), args=h.get("args", []), env=h.get("env", [])
            )
            if "timeout" in h:
                hook.timeout.value = int(h["timeout"])
    for r in process.get("rlimits", []):
        out.rlimits.add(
            type=r.get("type", ""), hard=int(r.get("hard", 0)), soft=int(r.get("soft", 0))
        )
    user = process.get("user") or {}
    out.user.uid = int(user.get("uid", 0))
    out.user.gid = int(user.get("gid", 0))
    out.user.additional_gids.extend(int(g) for g in user.get("additionalGids", []))
    for name in c.config.cdi_devices:
        out.CDI_devices.add(name=name)
    out.image.name = c.image_name
    out.image.config_digest = c.image_id
    for ns in linux.get("namespaces", []):
        out.linux.namespaces.add(type=ns.get("type", ""), path=ns.get("path", ""))
    for d in linux.get("devices", []):
        dev = out.linux.devices.add(
            path=d.get("path", ""),
            type=d.get("type", ""),
            major=int(d.get("major", 0)),
            minor=int(d.get("minor", 0)),
        )
        if "fileMode" in d:
            dev.file_mode.value = int(d["fileMode"])
        if "uid" in d:
            dev.uid.value = int(d["uid"])
        if "gid" in d:
            dev.gid.value = int(d["gid"])
    out.linux.resources.CopyFrom(spec_resources(linux.get("resources") or {}))
    if "oomScoreAdj" in process:
        out.linux.oom_score_adj.value = int(process["oomScoreAdj"])
    out.linux.cgroups_path = linux.get("cgroupsPath", "")
    return out


def refreshed(base: npb.Container, c: Container) -> npb.Container:
    """``base`` (a description made from the container's spec) with ``c``'s current state."""
    out = npb.Container()
    out.CopyFrom(base)
    out.state = _STATES[c.state]
    out.pid = c.pid
    out.created_at = c.created_at
    out.started_at = c.started_at
    out.finished_at = c.finished_at
    out.exit_code = c.exit_code
    out.status_reason = c.reason
    out.status_message = c.message
    return out


_HOOK_FIELDS = {
    "prestart": "prestart",
    "createRuntime": "create_runtime",
    "createContainer": "create_container",
    "startContainer": "start_container",
    "poststart": "poststart",
    "poststop": "poststop",
}
HOOK_NAMES = {v: k for k, v in _HOOK_FIELDS.items()}


def spec_resources(res: Mapping[str, Any]) -> npb.LinuxResources:
    """``linux.resources`` of an OCI spec as NRI resources."""
    out = npb.LinuxResources()
    mem = res.get("memory") or {}
    for key, field in (("limit", "limit"), ("reservation", "reservation"), ("swap", "swap")):
        if key in mem:
            getattr(out.memory, field).value = int(mem[key])
    cpu = res.get("cpu") or {}
    if "shares" in cpu:
        out.cpu.shares.value = int(cpu["shares"])
    if "quota" in cpu:
        out.cpu.quota.value = int(cpu["quota"])
    if "period" in cpu:
        out.cpu.period.value = int(cpu["period"])
    out.cpu.cpus = cpu.get("cpus", "")
    out.cpu.mems = cpu.get("mems", "")
    for h in res.get("hugepageLimits", []):
        out.hugepage_limits.add(page_size=h.get("pageSize", ""), limit=int(h.get("limit", 0)))
    out.unified.update(res.get("unified") or {})
    if "pids" in res and "limit" in res["pids"]:
        out.pids.limit = int(res["pids"]["limit"])
    return out


def linux_resources(r: Resources) -> npb.LinuxResources:
    out = npb.LinuxResources()
    if r.memory_limit_in_bytes:
        out.memory.limit.value = r.memory_limit_in_bytes
    if r.memory_swap_limit_in_bytes:
        out.memory.swap.value = r.memory_swap_limit_in_bytes
    if r.cpu_shares:
        out.cpu.shares.value = r.cpu_shares
    if r.cpu_quota:
        out.cpu.quota.value = r.cpu_quota
    if r.cpu_period:
        out.cpu.period.value = r.cpu_period
    out.cpu.cpus = r.cpuset_cpus
    out.cpu.mems = r.cpuset_mems
    for h in r.hugepage_limits:
        out.hugepage_limits.add(page_size=h.page_size, limit=h.limit)
    out.unified.update(r.unified)
    return out


def resources_from(res: npb.LinuxResources, base: Resources | None = None) -> Resources:
    """``base`` with what ``res`` sets replaced (an update names only what changes)."""
    base = base or Resources()
    mem, cpu = res.memory, res.cpu
    return Resources(
        cpu_period=cpu.period.value if cpu.HasField("period") else base.cpu_period,
        cpu_quota=cpu.quota.value if cpu.HasField("quota") else base.cpu_quota,
        cpu_shares=cpu.shares.value if cpu.HasField("shares") else base.cpu_shares,
        memory_limit_in_bytes=(
            mem.limit.value if mem.HasField("limit") else base.memory_limit_in_bytes
        ),
        oom_score_adj=base.oom_score_adj,
        cpuset_cpus=cpu.cpus or base.cpuset_cpus,
        cpuset_mems=cpu.mems or base.cpuset_mems,
        hugepage_limits=tuple(HugepageLimit(h.page_size, h.limit) for h in res.hugepage_limits)
        or base.hugepage_limits,
        unified={**base.unified, **dict(res.unified)},
        memory_swap_limit_in_bytes=(
            mem.swap.value if mem.HasField("swap") else base.memory_swap_limit_in_bytes
        ),
    )
