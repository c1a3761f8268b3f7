"""Plugins' container adjustments: ownership (conflict detection) and application to the OCI
spec. Pure apart from CDI resolution (which stats host device nodes).

Each plugin's ``ContainerAdjustment`` is applied in plugin order to the spec dict that is
about to be written. Every field a plugin sets is *claimed* by it: a second plugin setting
the same field (the same annotation key, mount destination, env variable, device path, CDI
device, rlimit type, hugepage size, unified key, or a scalar such as the memory limit or
the OOM score) fails the creation with ``plugins "A" and "B" both tried to set …``, the
way containerd's adaptation reports it. A removal (a key, destination or path marked with a
leading ``-``) gives up the claim, so a plugin may replace what another set by removing it
first. OCI hooks accumulate and are never in conflict. ``args`` whose first element is ""
replaces the command line without claiming it against an earlier setter.

What is not applied (pinnace's runc has no use for it or the kernel here lacks it) is
refused rather than dropped: namespaces, net devices, sysctls, the scheduler, I/O priority,
memory policy and ``cgroups_path`` adjustments fail the creation with a message naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cri.api.nri.v1alpha1 import api_pb2 as npb
from cri.nri.convert import HOOK_NAMES
from runtime.errors import FailedPrecondition, InvalidArgument


class DeviceInjector(Protocol):
    def inject(self, spec: dict[str, Any], names: list[str]) -> None: ...


def _removal(key: str) -> tuple[str, bool]:
    return (key[1:], True) if key.startswith("-") else (key, False)


# Field enum numbers (OwningPlugins) for the claims validators see.
_FIELD = {
    "annotation": 1,
    "mount": 2,
    "device": 4,
    "cdi device": 5,
    "env": 6,
    "args": 7,
    "memory limit": 8,
    "memory reservation": 9,
    "memory swap limit": 10,
    "cpu shares": 16,
    "cpu quota": 17,
    "cpu period": 18,
    "cpuset cpus": 21,
    "cpuset mems": 22,
    "pids limit": 23,
    "hugepage limit": 24,
    "blockio class": 25,
    "rdt class": 26,
    "unified resource": 27,
    "oom score adj": 29,
    "rlimit": 30,
    "seccomp policy": 32,
}


@dataclass
class Adjustments:
    """The adjustments of one container creation, plugin after plugin."""

    container_id: str
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    merged: npb.ContainerAdjustment = field(default_factory=npb.ContainerAdjustment)
    cdi_devices: list[str] = field(default_factory=list)

    def _claim(self, what: str, key: str, plugin: str) -> None:
        owner = self.owners.get((what, key))
        if owner is not None and owner != plugin:
            target = f"{what} {key!r}" if key else what
            raise FailedPrecondition(
                f"plugins {owner!r} and {plugin!r} both tried to set {target} of container "
                f"{self.container_id}"
            )
        self.owners[(what, key)] = plugin

    def _clear(self, what: str, key: str) -> None:
        self.owners.pop((what, key), None)

    def owning_plugins(self) -> npb.OwningPlugins:
        out = npb.OwningPlugins()
        fo = out.owners[self.container_id]
        for (what, key), plugin in self.owners.items():
            number = _FIELD.get(what, 0)
            if key:
                fo.compound[number].owners[key] = plugin
            else:
                fo.simple[number] = plugin
        return out

    def apply(
        self,
        spec: dict[str, Any],
        adj: npb.ContainerAdjustment,
        plugin: str,
    ) -> None:
        """Claim and apply one plugin's adjustment to ``spec``."""
        self.merged.MergeFrom(adj)
        self._annotations(spec, adj, plugin)
        self._mounts(spec, adj, plugin)
        self._env(spec, adj, plugin)
        self._args(spec, adj, plugin)
        self._hooks(spec, adj)
        self._rlimits(spec, adj, plugin)
        for d in adj.CDI_devices:
            self._claim("cdi device", d.name, plugin)
            if d.name not in self.cdi_devices:
                self.cdi_devices.append(d.name)
        if adj.HasField("linux"):
            self._linux(spec, adj.linux, plugin)

    def claim_resources(self, res: npb.LinuxResources, plugin: str) -> None:
        """Claim the resources one plugin's update sets (two plugins updating one field of
        one container conflict as adjustments do)."""
        self._resources({}, res, plugin)

    def inject_cdi(self, spec: dict[str, Any], cdi: DeviceInjector | None) -> None:
        """The CDI devices plugins asked for, applied once all adjustments are in."""
        if not self.cdi_devices:
            return
        if cdi is None:
            raise InvalidArgument(
                f"NRI plugins asked for CDI devices {self.cdi_devices} but CDI is not configured"
            )
        cdi.inject(spec, self.cdi_devices)

    # ---- the parts ----------------------------------------------------------------------

    def _annotations(self, spec: dict[str, Any], adj: npb.ContainerAdjustment, plugin: str) -> None:
        annotations = spec.setdefault("annotations", {})
        for raw in adj.annotations:
            key, removed = _removal(raw)
            if removed:
                self._clear("annotation", key)
                annotations.pop(key, None)
        for raw, value in adj.annotations.items():
            key, removed = _removal(raw)
            if not removed:
                self._claim("annotation", key, plugin)
                annotations[key] = value

    def _mounts(self, spec: dict[str, Any], adj: npb.ContainerAdjustment, plugin: str) -> None:
        if not adj.mounts:
            return
        mounts = list(spec.get("mounts", []))
        for m in adj.mounts:
            dest, removed = _removal(m.destination)
            mounts = [x for x in mounts if x.get("destination") != dest]
            if removed:
                self._clear("mount", dest)
                continue
            self._claim("mount", dest, plugin)
            entry: dict[str, Any] = {"destination": dest, "type": m.type or "bind"}
            if m.source:
                entry["source"] = m.source
            options = list(m.options)
            if entry["type"] == "bind" and not {"bind", "rbind"} & set(options):
                options.append("rbind")
            entry["options"] = options
            mounts.append(entry)
        # a parent directory before what is mounted inside it; equal depths keep their order
        mounts.sort(key=lambda x: len([p for p in x.get("destination", "").split("/") if p]))
        spec["mounts"] = mounts

    def _env(self, spec: dict[str, Any], adj: npb.ContainerAdjustment, plugin: str) -> None:
        if not adj.env:
            return
        process = spec.setdefault("process", {})
        env: list[str] = list(process.get("env", []))
        for kv in adj.env:
            key, removed = _removal(kv.key)
            env = [e for e in env if e.split("=", 1)[0] != key]
            if removed:
                self._clear("env", key)
                continue
            self._claim("env", key, plugin)
            env.append(f"{key}={kv.value}")
        process["env"] = env

    def _args(self, spec: dict[str, Any], adj: npb.ContainerAdjustment, plugin: str) -> None:
        args = list(adj.args)
        if not args:
            return
        if args[0] == "":
            self._clear("args", "")
            args = args[1:]
        self._claim("args", "", plugin)
        if args:
            spec.setdefault("process", {})["args"] = args

    def _hooks(self, spec: dict[str, Any], adj: npb.ContainerAdjustment) -> None:
        if not adj.HasField("hooks"):
            return
        hooks = spec.setdefault("hooks", {})
        for fname, oci_name in HOOK_NAMES.items():
            for h in getattr(adj.hooks, fname):
                hook: dict[str, Any] = {"path": h.path}
                if h.args:
                    hook["args"] = list(h.args)
                if h.env:
                    hook["env"] = list(h.env)
                if h.HasField("timeout"):
                    hook["timeout"] = h.timeout.value
                hooks.setdefault(oci_name, []).append(hook)

    def _rlimits(self, spec: dict[str, Any], adj: npb.ContainerAdjustment, plugin: str) -> None:
        if not adj.rlimits:
            return
        process = spec.setdefault("process", {})
        rlimits = list(process.get("rlimits", []))
        for r in adj.rlimits:
            self._claim("rlimit", r.type, plugin)
            rlimits = [x for x in rlimits if x.get("type") != r.type]
            rlimits.append({"type": r.type, "hard": r.hard, "soft": r.soft})
        process["rlimits"] = rlimits

    def _linux(self, spec: dict[str, Any], lin: npb.LinuxContainerAdjustment, plugin: str) -> None:
        unsupported = [
            name
            for name, present in (
                ("namespaces", bool(lin.namespaces)),
                ("net_devices", bool(lin.net_devices)),
                ("sysctl", bool(lin.sysctl)),
                ("scheduler", lin.HasField("scheduler")),
                ("io_priority", lin.HasField("io_priority")),
                ("memory_policy", lin.HasField("memory_policy")),
                ("rdt", lin.HasField("rdt")),
                ("cgroups_path", bool(lin.cgroups_path)),
            )
            if present
        ]
        if unsupported:
            raise FailedPrecondition(
                f"NRI plugin {plugin!r} adjusted {', '.join(unsupported)} of container "
                f"{self.container_id}: pinnace does not apply these adjustments"
            )
        linux = spec.setdefault("linux", {})
        for d in lin.devices:
            path, removed = _removal(d.path)
            linux["devices"] = [x for x in linux.get("devices", []) if x.get("path") != path]
            if removed:
                self._clear("device", path)
                continue
            self._claim("device", path, plugin)
            entry: dict[str, Any] = {
                "path": path,
                "type": d.type,
                "major": d.major,
                "minor": d.minor,
            }
            if d.HasField("file_mode"):
                entry["fileMode"] = d.file_mode.value
            if d.HasField("uid"):
                entry["uid"] = d.uid.value
            if d.HasField("gid"):
                entry["gid"] = d.gid.value
            linux["devices"].append(entry)
            linux.setdefault("resources", {}).setdefault("devices", []).append(
                {"allow": True, "type": d.type, "major": d.major, "minor": d.minor, "access": "rwm"}
            )
        if lin.HasField("oom_score_adj"):
            self._claim("oom score adj", "", plugin)
            spec.setdefault("process", {})["oomScoreAdj"] = lin.oom_score_adj.value
        if lin.HasField("seccomp_policy"):
            self._claim("seccomp policy", "", plugin)
            linux["seccomp"] = _seccomp(lin.seccomp_policy)
        if lin.HasField("resources"):
            self._resources(linux, lin.resources, plugin)

    def _resources(self, linux: dict[str, Any], res: npb.LinuxResources, plugin: str) -> None:
        out = linux.setdefault("resources", {})
        mem = res.memory
        for what, name, fld in (
            ("memory limit", "limit", "limit"),
            ("memory reservation", "reservation", "reservation"),
            ("memory swap limit", "swap", "swap"),
        ):
            if mem.HasField(fld):  # type: ignore[arg-type]
                self._claim(what, "", plugin)
                out.setdefault("memory", {})[name] = getattr(mem, fld).value
        cpu = res.cpu
        for what, name, fld in (
            ("cpu shares", "shares", "shares"),
            ("cpu quota", "quota", "quota"),
            ("cpu period", "period", "period"),
        ):
            if cpu.HasField(fld):  # type: ignore[arg-type]
                self._claim(what, "", plugin)
                out.setdefault("cpu", {})[name] = getattr(cpu, fld).value
        if cpu.cpus:
            self._claim("cpuset cpus", "", plugin)
            out.setdefault("cpu", {})["cpus"] = cpu.cpus
        if cpu.mems:
            self._claim("cpuset mems", "", plugin)
            out.setdefault("cpu", {})["mems"] = cpu.mems
        if res.HasField("pids"):
            self._claim("pids limit", "", plugin)
            out["pids"] = {"limit": res.pids.limit}
        for h in res.hugepage_limits:
            self._claim("hugepage limit", h.page_size, plugin)
            limits = [x for x in out.get("hugepageLimits", []) if x.get("pageSize") != h.page_size]
            limits.append({"pageSize": h.page_size, "limit": h.limit})
            out["hugepageLimits"] = limits
        for key, value in res.unified.items():
            self._claim("unified resource", key, plugin)
            out.setdefault("unified", {})[key] = value
        if res.HasField("blockio_class"):
            # A class names settings in a blockio configuration (containerd's goresctrl
            # file); pinnace has none, so like containerd with blockio disabled it refuses
            # a class. An empty class clears the container's blockio, as containerd's does.
            self._claim("blockio class", "", plugin)
            if res.blockio_class.value:
                raise FailedPrecondition(
                    f"NRI plugin {plugin!r} set blockio class {res.blockio_class.value!r} of "
                    f"container {self.container_id}: no blockio classes are configured"
                )
            out.pop("blockIO", None)
        if res.HasField("rdt_class"):
            self._claim("rdt class", "", plugin)
            if res.rdt_class.value:
                linux["intelRdt"] = {"closID": res.rdt_class.value}
            else:  # an empty class: no RDT class (containerd's ClearLinuxIntelRdt)
                linux.pop("intelRdt", None)


def _seccomp(p: npb.LinuxSeccomp) -> dict[str, Any]:
    out: dict[str, Any] = {"defaultAction": p.default_action}
    if p.HasField("default_errno"):
        out["defaultErrnoRet"] = p.default_errno.value
    if p.architectures:
        out["architectures"] = list(p.architectures)
    if p.flags:
        out["flags"] = list(p.flags)
    if p.listener_path:
        out["listenerPath"] = p.listener_path
    if p.listener_metadata:
        out["listenerMetadata"] = p.listener_metadata
    syscalls = []
    for s in p.syscalls:
        entry: dict[str, Any] = {"names": list(s.names), "action": s.action}
        if s.HasField("errno_ret"):
            entry["errnoRet"] = s.errno_ret.value
        if s.args:
            entry["args"] = [
                {"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}
                for a in s.args
            ]
        syscalls.append(entry)
    if syscalls:
        out["syscalls"] = syscalls
    return out
