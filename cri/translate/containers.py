"""CRI container messages <-> the runtime's container model, resources and security.

Terms:

unset
    proto3 cannot tell an empty repeated field or a zero number from one the caller never set.
    Where that matters this module follows containerd: an empty ``masked_paths`` /
    ``readonly_paths`` means "the runtime's defaults" (``None`` in the model), a zero resource
    figure means "no limit".
literal
    Enum fields are read as the proto defines them, including their zero values: an absent
    ``namespace_options`` means POD for network, PID and IPC, exactly as containerd reads it.

The helpers that pods share (namespace options, security profiles, resources) live here, and
:mod:`cri.translate.pods` imports them. Every function is pure; bad input raises
:class:`runtime.errors.InvalidArgument` naming the field, and features pinnace does not have
raise :class:`runtime.errors.Unimplemented`.
"""

from __future__ import annotations

import posixpath
import signal
from collections.abc import Sequence
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.errors import InvalidArgument, Unimplemented
from runtime.images import naming
from runtime.model.pods import (
    Capabilities,
    Container,
    ContainerConfig,
    ContainerState,
    Device,
    HugepageLimit,
    IdMapping,
    Mount,
    NamespaceMode,
    NamespaceOptions,
    ProfileType,
    Propagation,
    Resources,
    SecurityContext,
    SecurityProfile,
    SupplementalGroupsPolicy,
    UserNamespace,
)

__all__ = [
    "container_config",
    "container_config_to_pb",
    "container_security",
    "container_security_to_pb",
    "container_state_to_pb",
    "container_status",
    "container_summary",
    "env_value_bytes",
    "mount_to_pb",
    "namespace_options",
    "namespace_options_to_pb",
    "resources",
    "resources_to_pb",
    "security_profile",
    "security_profile_to_pb",
    "signal_from_pb",
    "signal_to_pb",
]

# --- enums -----------------------------------------------------------------------------------

_NAMESPACE_MODES = {
    pb.POD: NamespaceMode.POD,
    pb.CONTAINER: NamespaceMode.CONTAINER,
    pb.NODE: NamespaceMode.NODE,
    pb.TARGET: NamespaceMode.TARGET,
}
_NAMESPACE_MODES_PB = {v: k for k, v in _NAMESPACE_MODES.items()}

_PROFILE_TYPES = {
    pb.SecurityProfile.RuntimeDefault: ProfileType.RUNTIME_DEFAULT,
    pb.SecurityProfile.Unconfined: ProfileType.UNCONFINED,
    pb.SecurityProfile.Localhost: ProfileType.LOCALHOST,
}
_PROFILE_TYPES_PB = {v: k for k, v in _PROFILE_TYPES.items()}

_PROPAGATIONS = {
    pb.PROPAGATION_PRIVATE: Propagation.PRIVATE,
    pb.PROPAGATION_HOST_TO_CONTAINER: Propagation.HOST_TO_CONTAINER,
    pb.PROPAGATION_BIDIRECTIONAL: Propagation.BIDIRECTIONAL,
}
_PROPAGATIONS_PB = {v: k for k, v in _PROPAGATIONS.items()}

_CONTAINER_STATES_PB = {
    ContainerState.CREATED: pb.CONTAINER_CREATED,
    ContainerState.RUNNING: pb.CONTAINER_RUNNING,
    ContainerState.EXITED: pb.CONTAINER_EXITED,
    ContainerState.UNKNOWN: pb.CONTAINER_UNKNOWN,
}

_SIGNAL_PREFIX = "SIGNAL_"


def container_state_to_pb(state: ContainerState) -> pb.ContainerState:
    return _CONTAINER_STATES_PB[state]


def signal_from_pb(value: int, *, field: str = "stop_signal") -> str:
    """The signal's name for a CRI ``Signal`` ("SIGTERM", "SIGRTMIN+3", "SIGRTMAX-1");
    ``SIGNAL_RUNTIME_DEFAULT`` is "" (the image's STOPSIGNAL, else SIGTERM). Aliases keep
    their name (SIGCLD, SIGIOT, SIGPOLL)."""
    try:
        name = pb.Signal.Name(value)
    except ValueError:
        raise InvalidArgument(f"{field}: unknown Signal value {value}") from None
    if value == pb.SIGNAL_RUNTIME_DEFAULT:
        return ""
    name = name.removeprefix(_SIGNAL_PREFIX)
    if "PLUS" in name:
        base, n = name.split("PLUS")
        return f"{base}+{n}"
    if "MINUS" in name:
        base, n = name.split("MINUS")
        return f"{base}-{n}"
    return name


def signal_to_pb(name: str) -> pb.Signal:
    """The CRI ``Signal`` for a name as :func:`signal_from_pb` writes it (also accepts "TERM"
    and the plain number of a standard signal, as image STOPSIGNALs may say); anything
    unknown is ``SIGNAL_RUNTIME_DEFAULT``."""
    name = name.strip().upper()
    if not name:
        return pb.SIGNAL_RUNTIME_DEFAULT
    if name.isdigit():
        try:
            name = signal.Signals(int(name)).name
        except ValueError:
            return pb.SIGNAL_RUNTIME_DEFAULT
    elif not name.startswith("SIG"):
        name = "SIG" + name
    key = _SIGNAL_PREFIX + name.replace("+", "PLUS").replace("-", "MINUS")
    try:
        return pb.Signal.Value(key)
    except ValueError:
        return pb.SIGNAL_RUNTIME_DEFAULT


# --- namespaces and profiles -----------------------------------------------------------------


def _check_userns(msg: pb.UserNamespace, field: str) -> UserNamespace | None:
    """The CRI's rules for ``userns_options``: NODE (the host's, what the kubelet sends for
    ``hostUsers: true``) has no mappings and gives None; POD has exactly one uid and one gid
    mapping, each mapping container id 0; CONTAINER and TARGET are not modes a user namespace
    can have. Whether the pod's runtime handler can run it is the sandbox controller's
    question (Unimplemented there when it cannot)."""
    if msg.mode == pb.NODE:
        if len(msg.uids) or len(msg.gids):
            raise InvalidArgument(f"{field}: mode NODE takes no uid or gid mappings")
        return None
    if msg.mode != pb.POD:
        known = msg.mode in (pb.CONTAINER, pb.TARGET)
        shown = pb.NamespaceMode.Name(msg.mode) if known else str(msg.mode)
        raise InvalidArgument(f"{field}.mode: a user namespace is NODE or POD, not {shown}")
    out: dict[str, IdMapping] = {}
    for kind, mappings in (("uids", msg.uids), ("gids", msg.gids)):
        if len(mappings) != 1:
            raise InvalidArgument(
                f"{field}.{kind}: mode POD needs exactly one mapping, got {len(mappings)}"
            )
        (m,) = mappings
        if m.length == 0 or m.container_id != 0:
            raise InvalidArgument(
                f"{field}.{kind}: the mapping must start at container id 0 with a non-zero "
                f"length (got container_id {m.container_id}, length {m.length})"
            )
        if m.host_id + m.length > 1 << 32:
            raise InvalidArgument(f"{field}.{kind}: the mapping runs past id 2^32-1")
        out[kind] = IdMapping(container_id=0, host_id=m.host_id, length=m.length)
    return UserNamespace(uids=(out["uids"],), gids=(out["gids"],))


def namespace_options(msg: pb.NamespaceOption, *, field: str) -> NamespaceOptions:
    """Namespace modes, read literally (zero is POD); ``userns_options`` checked by the CRI's
    rules (see :func:`_check_userns`). A user namespace of mode POD needs the pod's own
    network, IPC and PID namespaces (as Kubernetes' ``hostUsers: false`` does)."""
    userns = None
    if msg.HasField("userns_options"):
        userns = _check_userns(msg.userns_options, f"{field}.userns_options")
    ns = NamespaceOptions(
        network=_namespace_mode(msg.network, f"{field}.network"),
        pid=_namespace_mode(msg.pid, f"{field}.pid"),
        ipc=_namespace_mode(msg.ipc, f"{field}.ipc"),
        target_id=msg.target_id,
        userns=userns,
    )
    if userns is not None:
        for name in ("network", "pid", "ipc"):
            if getattr(ns, name) is NamespaceMode.NODE:
                raise InvalidArgument(
                    f"{field}.{name}: a pod in its own user namespace (userns_options mode "
                    "POD) cannot use the node's namespaces"
                )
    return ns


def _namespace_mode(value: pb.NamespaceMode, field: str) -> NamespaceMode:
    try:
        return _NAMESPACE_MODES[value]
    except KeyError:
        raise InvalidArgument(f"{field}: unknown NamespaceMode {value}") from None


def namespace_options_to_pb(ns: NamespaceOptions) -> pb.NamespaceOption:
    msg = pb.NamespaceOption(
        network=_NAMESPACE_MODES_PB[ns.network],
        pid=_NAMESPACE_MODES_PB[ns.pid],
        ipc=_NAMESPACE_MODES_PB[ns.ipc],
        target_id=ns.target_id,
    )
    if ns.userns is not None:  # the node's (NODE) is the absent field, as the kubelet sends
        msg.userns_options.CopyFrom(_userns_to_pb(ns.userns))
    return msg


def _userns_to_pb(userns: UserNamespace) -> pb.UserNamespace:
    return pb.UserNamespace(
        mode=pb.POD,
        uids=[
            pb.IDMapping(host_id=m.host_id, container_id=0, length=m.length) for m in userns.uids
        ],
        gids=[
            pb.IDMapping(host_id=m.host_id, container_id=0, length=m.length) for m in userns.gids
        ],
    )


_GROUPS_POLICIES: dict[int, SupplementalGroupsPolicy] = {
    pb.Merge: SupplementalGroupsPolicy.MERGE,
    pb.Strict: SupplementalGroupsPolicy.STRICT,
}
_GROUPS_POLICIES_PB: dict[SupplementalGroupsPolicy, pb.SupplementalGroupsPolicy] = {
    SupplementalGroupsPolicy.MERGE: pb.Merge,
    SupplementalGroupsPolicy.STRICT: pb.Strict,
}


def groups_policy(value: int, field: str) -> SupplementalGroupsPolicy:
    """The supplemental-groups policy; InvalidArgument for a value the CRI does not define."""
    try:
        return _GROUPS_POLICIES[value]
    except KeyError:
        raise InvalidArgument(f"{field}: unknown value {value} (Merge or Strict)") from None


def groups_policy_to_pb(policy: SupplementalGroupsPolicy) -> pb.SupplementalGroupsPolicy:
    return _GROUPS_POLICIES_PB[policy]


def security_profile(
    msg: pb.SecurityProfile | None, legacy: str, *, field: str, default: ProfileType
) -> SecurityProfile:
    """A seccomp or AppArmor choice from the structured field (``msg``, None when absent) or
    else the deprecated string (``legacy``: "runtime/default", "docker/default",
    "unconfined", "localhost/<ref>"); neither set gives ``default``."""
    if msg is not None:
        try:
            kind = _PROFILE_TYPES[msg.profile_type]
        except KeyError:
            raise InvalidArgument(
                f"{field}.profile_type: unknown value {msg.profile_type}"
            ) from None
        if kind is not ProfileType.LOCALHOST:
            return SecurityProfile(kind)
        if not msg.localhost_ref:
            raise InvalidArgument(
                f"{field}.localhost_ref is empty: a Localhost profile needs the profile's "
                "path (seccomp) or name (AppArmor)"
            )
        return SecurityProfile(ProfileType.LOCALHOST, msg.localhost_ref)
    if not legacy:
        return SecurityProfile(default)
    if legacy in ("runtime/default", "docker/default"):
        return SecurityProfile(ProfileType.RUNTIME_DEFAULT)
    if legacy == "unconfined":
        return SecurityProfile(ProfileType.UNCONFINED)
    if legacy.startswith("localhost/") and len(legacy) > len("localhost/"):
        return SecurityProfile(ProfileType.LOCALHOST, legacy.removeprefix("localhost/"))
    raise InvalidArgument(
        f"{field}: unknown profile {legacy!r}; use 'runtime/default', 'unconfined' or "
        "'localhost/<profile>' (or the structured field)"
    )


def security_profile_to_pb(profile: SecurityProfile) -> pb.SecurityProfile:
    return pb.SecurityProfile(
        profile_type=_PROFILE_TYPES_PB[profile.type], localhost_ref=profile.localhost_ref
    )


def _optional_id(msg: Any, name: str, field: str) -> int | None:
    if not msg.HasField(name):
        return None
    value = int(getattr(msg, name).value)
    if value < 0:
        raise InvalidArgument(f"{field}.{name} is {value}: ids are non-negative")
    return value


def _groups(values: Any, field: str) -> tuple[int, ...]:
    out = tuple(int(g) for g in values)
    for g in out:
        if g < 0:
            raise InvalidArgument(f"{field}.supplemental_groups contains {g}: gids are >= 0")
    return out


# --- resources -------------------------------------------------------------------------------


def resources(msg: pb.LinuxContainerResources, *, field: str = "linux.resources") -> Resources:
    """Linux resources; zero (or empty) means unset. Quota and swap may be -1 (unlimited)."""
    for name in ("cpu_period", "cpu_shares", "memory_limit_in_bytes"):
        if getattr(msg, name) < 0:
            raise InvalidArgument(f"{field}.{name} is negative; use 0 for unset")
    for name in ("cpu_quota", "memory_swap_limit_in_bytes"):
        if getattr(msg, name) < -1:
            raise InvalidArgument(f"{field}.{name} is below -1; use -1 for unlimited, 0 for unset")
    if not -1000 <= msg.oom_score_adj <= 1000:
        raise InvalidArgument(f"{field}.oom_score_adj {msg.oom_score_adj} is outside -1000..1000")
    hugepages = []
    for i, h in enumerate(msg.hugepage_limits):
        if not h.page_size:
            raise InvalidArgument(f"{field}.hugepage_limits[{i}].page_size is empty (e.g. '2MB')")
        hugepages.append(HugepageLimit(page_size=h.page_size, limit=h.limit))
    return Resources(
        cpu_period=msg.cpu_period,
        cpu_quota=msg.cpu_quota,
        cpu_shares=msg.cpu_shares,
        memory_limit_in_bytes=msg.memory_limit_in_bytes,
        oom_score_adj=msg.oom_score_adj,
        cpuset_cpus=msg.cpuset_cpus,
        cpuset_mems=msg.cpuset_mems,
        hugepage_limits=tuple(hugepages),
        unified=dict(msg.unified),
        memory_swap_limit_in_bytes=msg.memory_swap_limit_in_bytes,
    )


def resources_to_pb(r: Resources) -> pb.LinuxContainerResources:
    return pb.LinuxContainerResources(
        cpu_period=r.cpu_period,
        cpu_quota=r.cpu_quota,
        cpu_shares=r.cpu_shares,
        memory_limit_in_bytes=r.memory_limit_in_bytes,
        oom_score_adj=r.oom_score_adj,
        cpuset_cpus=r.cpuset_cpus,
        cpuset_mems=r.cpuset_mems,
        hugepage_limits=[
            pb.HugepageLimit(page_size=h.page_size, limit=h.limit) for h in r.hugepage_limits
        ],
        unified=dict(r.unified),
        memory_swap_limit_in_bytes=r.memory_swap_limit_in_bytes,
    )


# --- container config ------------------------------------------------------------------------

_CAP_PREFIX = "CAP_"


def _capabilities(msg: pb.Capability, field: str) -> Capabilities:
    def names(values: Any, which: str) -> tuple[str, ...]:
        out = []
        for i, v in enumerate(values):
            name = v.strip().upper().removeprefix(_CAP_PREFIX)
            if not name:
                raise InvalidArgument(f"{field}.{which}[{i}] is empty")
            out.append(name)
        return tuple(out)

    return Capabilities(
        add=names(msg.add_capabilities, "add_capabilities"),
        drop=names(msg.drop_capabilities, "drop_capabilities"),
        add_ambient=names(msg.add_ambient_capabilities, "add_ambient_capabilities"),
    )


def _paths(values: Any, *, privileged: bool) -> tuple[str, ...] | None:
    # containerd: a privileged container masks nothing; otherwise an empty list (which the
    # wire cannot tell from "unset") keeps the runtime's defaults.
    if privileged:
        return ()
    return tuple(values) or None


def container_security(
    msg: pb.LinuxContainerSecurityContext, *, field: str = "linux.security_context"
) -> SecurityContext:
    """A container's security settings. Seccomp unset is unconfined (the CRI's default);
    AppArmor unset is the runtime default (the CRI's "equivalent to not specifying")."""
    privileged = msg.privileged
    return SecurityContext(
        privileged=privileged,
        capabilities=_capabilities(msg.capabilities, f"{field}.capabilities"),
        namespaces=namespace_options(msg.namespace_options, field=f"{field}.namespace_options"),
        run_as_user=_optional_id(msg, "run_as_user", field),
        run_as_group=_optional_id(msg, "run_as_group", field),
        run_as_username=msg.run_as_username,
        readonly_rootfs=msg.readonly_rootfs,
        supplemental_groups=_groups(msg.supplemental_groups, field),
        supplemental_groups_policy=groups_policy(
            msg.supplemental_groups_policy, f"{field}.supplemental_groups_policy"
        ),
        no_new_privs=msg.no_new_privs,
        masked_paths=_paths(msg.masked_paths, privileged=privileged),
        readonly_paths=_paths(msg.readonly_paths, privileged=privileged),
        seccomp=security_profile(
            msg.seccomp if msg.HasField("seccomp") else None,
            msg.seccomp_profile_path,
            field=f"{field}.seccomp",
            default=ProfileType.UNCONFINED,
        ),
        apparmor=security_profile(
            msg.apparmor if msg.HasField("apparmor") else None,
            msg.apparmor_profile,
            field=f"{field}.apparmor",
            default=ProfileType.RUNTIME_DEFAULT,
        ),
    )


def container_security_to_pb(sc: SecurityContext) -> pb.LinuxContainerSecurityContext:
    out = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(
            add_capabilities=list(sc.capabilities.add),
            drop_capabilities=list(sc.capabilities.drop),
            add_ambient_capabilities=list(sc.capabilities.add_ambient),
        ),
        privileged=sc.privileged,
        namespace_options=namespace_options_to_pb(sc.namespaces),
        run_as_username=sc.run_as_username,
        readonly_rootfs=sc.readonly_rootfs,
        supplemental_groups=list(sc.supplemental_groups),
        supplemental_groups_policy=groups_policy_to_pb(sc.supplemental_groups_policy),
        no_new_privs=sc.no_new_privs,
        masked_paths=list(sc.masked_paths or ()),
        readonly_paths=list(sc.readonly_paths or ()),
        seccomp=security_profile_to_pb(sc.seccomp),
        apparmor=security_profile_to_pb(sc.apparmor),
    )
    if sc.run_as_user is not None:
        out.run_as_user.value = sc.run_as_user
    if sc.run_as_group is not None:
        out.run_as_group.value = sc.run_as_group
    return out


def _envs(values: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for i, kv in enumerate(values):
        key = kv.key
        if not key:
            raise InvalidArgument(f"envs[{i}].key is empty")
        if "=" in key or "\0" in key:
            raise InvalidArgument(f"envs[{i}].key {key!r} contains '=' or a NUL byte")
        raw = bytes(kv.value)
        if b"\0" in raw:
            raise InvalidArgument(
                f"envs[{i}] ({key}): the value contains a NUL byte, which an environment "
                "variable cannot hold"
            )
        # surrogateescape: bytes that are not UTF-8 survive the round trip to bytes again.
        out.append((key, raw.decode("utf-8", "surrogateescape")))
    return tuple(out)


def env_value_bytes(value: str) -> bytes:
    """The bytes of an env value decoded by :func:`container_config` (undoes
    ``surrogateescape``); use this, not ``str.encode()``, when writing an OCI spec."""
    return value.encode("utf-8", "surrogateescape")


def _id_mappings(msg: pb.Mount, field: str) -> tuple[tuple[IdMapping, ...], tuple[IdMapping, ...]]:
    """A mount's ``uidMappings`` and ``gidMappings`` (both or neither; each line non-empty
    and inside the 32-bit id space). Whether they fit the pod is the pod layer's question."""
    out: list[tuple[IdMapping, ...]] = []
    for kind, mappings in (("uidMappings", msg.uidMappings), ("gidMappings", msg.gidMappings)):
        lines = []
        for i, m in enumerate(mappings):
            if m.length == 0:
                raise InvalidArgument(f"{field}.{kind}[{i}]: the length must not be 0")
            if max(m.host_id, m.container_id) + m.length > 1 << 32:
                raise InvalidArgument(f"{field}.{kind}[{i}]: the mapping runs past id 2^32-1")
            lines.append(IdMapping(container_id=m.container_id, host_id=m.host_id, length=m.length))
        out.append(tuple(lines))
    uids, gids = out
    if bool(uids) != bool(gids):
        raise InvalidArgument(f"{field}: an id-mapped mount needs both uidMappings and gidMappings")
    return uids, gids


def _image_mount(msg: pb.Mount, field: str) -> Mount:
    """An image volume (``Mount.image``): read-only, no host path, a relative sub path."""
    uids, gids = _id_mappings(msg, field)
    if not msg.readonly:
        raise InvalidArgument(f"{field}: an image volume ({msg.image.image}) must be readonly")
    if msg.host_path:
        raise InvalidArgument(f"{field}: an image volume has no host_path ({msg.host_path!r})")
    sub = msg.image_sub_path
    if sub and (posixpath.isabs(sub) or ".." in sub.split("/")):
        raise InvalidArgument(
            f"{field}.image_sub_path {sub!r} must be a relative path inside the image"
        )
    try:
        propagation = _PROPAGATIONS[msg.propagation]
    except KeyError:
        raise InvalidArgument(f"{field}.propagation: unknown value {msg.propagation}") from None
    return Mount(
        container_path=msg.container_path,
        host_path="",
        readonly=True,
        propagation=propagation,
        selinux_relabel=msg.selinux_relabel,
        recursive_read_only=msg.recursive_read_only,
        image=msg.image.image,
        image_sub_path=sub,
        uid_mappings=uids,
        gid_mappings=gids,
    )


def _mount(msg: pb.Mount, field: str) -> Mount:
    if len(msg.mount_options):
        raise Unimplemented(f"{field}.mount_options are not supported")
    if not msg.container_path:
        raise InvalidArgument(f"{field}.container_path is empty")
    if not posixpath.isabs(msg.container_path):
        raise InvalidArgument(
            f"{field}.container_path {msg.container_path!r} must be an absolute path"
        )
    if msg.HasField("image") and msg.image.image:
        return _image_mount(msg, field)
    if not msg.host_path:
        raise InvalidArgument(f"{field}.host_path is empty")
    uids, gids = _id_mappings(msg, field)
    try:
        propagation = _PROPAGATIONS[msg.propagation]
    except KeyError:
        raise InvalidArgument(f"{field}.propagation: unknown value {msg.propagation}") from None
    return Mount(
        container_path=msg.container_path,
        host_path=msg.host_path,
        readonly=msg.readonly,
        propagation=propagation,
        selinux_relabel=msg.selinux_relabel,
        recursive_read_only=msg.recursive_read_only,
        uid_mappings=uids,
        gid_mappings=gids,
    )


def _mapping_to_pb(m: IdMapping) -> pb.IDMapping:
    return pb.IDMapping(host_id=m.host_id, container_id=m.container_id, length=m.length)


def mount_to_pb(m: Mount) -> pb.Mount:
    out = pb.Mount(
        container_path=m.container_path,
        host_path=m.host_path,
        readonly=m.readonly,
        selinux_relabel=m.selinux_relabel,
        propagation=_PROPAGATIONS_PB[m.propagation],
        recursive_read_only=m.recursive_read_only,
        image_sub_path=m.image_sub_path,
        uidMappings=[_mapping_to_pb(x) for x in m.uid_mappings],
        gidMappings=[_mapping_to_pb(x) for x in m.gid_mappings],
    )
    if m.image:
        out.image.CopyFrom(pb.ImageSpec(image=m.image))
    return out


def _device(msg: pb.Device, field: str) -> Device:
    if not msg.container_path:
        raise InvalidArgument(f"{field}.container_path is empty")
    if not msg.host_path:
        raise InvalidArgument(f"{field}.host_path is empty")
    permissions = msg.permissions or "rwm"
    if set(permissions) - set("rwm"):
        raise InvalidArgument(f"{field}.permissions {msg.permissions!r}: use letters from 'rwm'")
    return Device(
        container_path=msg.container_path, host_path=msg.host_path, permissions=permissions
    )


def _log_path(path: str) -> str:
    if not path:
        return ""
    if posixpath.isabs(path):
        raise InvalidArgument(f"log_path {path!r} must be relative to the sandbox's log_directory")
    if ".." in path.split("/"):
        raise InvalidArgument(f"log_path {path!r} must not contain '..' components")
    return path


def container_config(msg: pb.ContainerConfig) -> ContainerConfig:
    """What CreateContainer asks for, validated. Windows settings are ignored;
    ``mount_options`` are Unimplemented."""
    if not msg.HasField("metadata") or not msg.metadata.name:
        raise InvalidArgument("metadata.name is empty: set the container's name")
    if not msg.HasField("image") or not msg.image.image:
        raise InvalidArgument("image.image is empty: name the image to run")
    cdi_devices = []
    for i, dev in enumerate(msg.CDI_devices):
        if not dev.name:
            raise InvalidArgument(f"CDI_devices[{i}].name is empty: name a vendor.com/class=name")
        cdi_devices.append(dev.name)
    linux = msg.linux
    return ContainerConfig(
        name=msg.metadata.name,
        attempt=msg.metadata.attempt,
        image=msg.image.image,
        user_specified_image=msg.image.user_specified_image,
        command=tuple(msg.command),
        args=tuple(msg.args),
        working_dir=msg.working_dir,
        envs=_envs(msg.envs),
        mounts=tuple(_mount(m, f"mounts[{i}]") for i, m in enumerate(msg.mounts)),
        devices=tuple(_device(d, f"devices[{i}]") for i, d in enumerate(msg.devices)),
        labels=dict(msg.labels),
        annotations=dict(msg.annotations),
        log_path=_log_path(msg.log_path),
        stdin=msg.stdin,
        stdin_once=msg.stdin_once,
        tty=msg.tty,
        resources=resources(linux.resources) if linux.HasField("resources") else None,
        security=container_security(linux.security_context),
        stop_signal=signal_from_pb(msg.stop_signal),
        cdi_devices=tuple(cdi_devices),
    )


def container_config_to_pb(cfg: ContainerConfig) -> pb.ContainerConfig:
    """The CRI form of ``cfg`` (verbose info, tests); ``container_config`` of it gives ``cfg``
    back."""
    linux = pb.LinuxContainerConfig(security_context=container_security_to_pb(cfg.security))
    if cfg.resources is not None:
        linux.resources.CopyFrom(resources_to_pb(cfg.resources))
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=cfg.name, attempt=cfg.attempt),
        image=pb.ImageSpec(image=cfg.image, user_specified_image=cfg.user_specified_image),
        command=list(cfg.command),
        args=list(cfg.args),
        working_dir=cfg.working_dir,
        envs=[pb.KeyValue(key=k, value=env_value_bytes(v)) for k, v in cfg.envs],
        mounts=[mount_to_pb(m) for m in cfg.mounts],
        devices=[
            pb.Device(
                container_path=d.container_path, host_path=d.host_path, permissions=d.permissions
            )
            for d in cfg.devices
        ],
        labels=dict(cfg.labels),
        annotations=dict(cfg.annotations),
        log_path=cfg.log_path,
        stdin=cfg.stdin,
        stdin_once=cfg.stdin_once,
        tty=cfg.tty,
        linux=linux,
        stop_signal=signal_to_pb(cfg.stop_signal),
        CDI_devices=[pb.CDIDevice(name=n) for n in cfg.cdi_devices],
    )


# --- status and list -------------------------------------------------------------------------


def _metadata(c: Container) -> pb.ContainerMetadata:
    return pb.ContainerMetadata(name=c.config.name, attempt=c.config.attempt)


def container_status(
    c: Container,
    *,
    repo_tags: Sequence[str] = (),
    repo_digests: Sequence[str] = (),
    image_stop_signal: str = "",
) -> pb.ContainerStatus:
    """ContainerStatus for ``c``, whose image has ``repo_tags`` and ``repo_digests``. As
    containerd: ``image`` is the name the user asked for (``user_specified_image``, else the
    image's first tag), ``image_ref`` a repo digest of it (see :mod:`runtime.images.naming`),
    ``image_id`` the image id. The stop signal is the config's, else the image's STOPSIGNAL,
    else SIGTERM, as containerd reports it. ``user`` is the identity the process was given
    (uid, gid and every group id, the primary one included)."""
    shown = naming.shown_name(
        user_specified=c.config.user_specified_image,
        requested=c.image_name,
        repo_tags=repo_tags,
    )
    out = pb.ContainerStatus(
        id=c.id,
        metadata=_metadata(c),
        state=container_state_to_pb(c.state),
        created_at=c.created_at,
        started_at=c.started_at,
        finished_at=c.finished_at,
        exit_code=c.exit_code,
        image=pb.ImageSpec(image=shown),
        image_ref=naming.image_ref(shown=shown, repo_digests=repo_digests, image_id=c.image_id),
        image_id=c.image_id,
        reason=c.reason,
        message=c.message,
        labels=dict(c.config.labels),
        annotations=dict(c.config.annotations),
        mounts=[mount_to_pb(m) for m in c.config.mounts],
        log_path=c.log_path,
    )
    applied = c.resources if c.resources is not None else c.config.resources
    if applied is not None:
        out.resources.linux.CopyFrom(resources_to_pb(applied))
    signal = signal_to_pb(c.config.stop_signal or image_stop_signal)
    out.stop_signal = signal if signal != pb.SIGNAL_RUNTIME_DEFAULT else pb.SIGNAL_SIGTERM
    if c.user is not None:
        out.user.linux.CopyFrom(
            pb.LinuxContainerUser(
                uid=c.user.uid, gid=c.user.gid, supplemental_groups=list(c.user.groups)
            )
        )
    return out


def container_summary(c: Container) -> pb.Container:
    """The ListContainers entry for ``c``: the image as the caller named it, and the image id
    as both ``image_ref`` and ``image_id`` (what kubelet's image GC keys on)."""
    return pb.Container(
        id=c.id,
        pod_sandbox_id=c.sandbox_id,
        metadata=_metadata(c),
        image=pb.ImageSpec(image=c.image_name),
        image_ref=c.image_id,
        image_id=c.image_id,
        state=container_state_to_pb(c.state),
        created_at=c.created_at,
        labels=dict(c.config.labels),
        annotations=dict(c.config.annotations),
    )
