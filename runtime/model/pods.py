"""Pods and containers in the runtime's own words: what a caller asks for (``SandboxConfig``,
``ContainerConfig``) and what the runtime keeps (``Sandbox``, ``Container``).

These mirror the CRI's messages closely because the CRI is the contract, but they are plain
frozen dataclasses: ``cri/translate`` converts protobuf to and from them, and nothing below
``cri/`` sees protobuf. Times are integers in nanoseconds since the epoch, as the CRI reports
them.

Terms:

sandbox
    A pod's shared environment: its pinned network, IPC and UTS namespaces (or the node's),
    its cgroup parent, hostname, /etc/hosts, /etc/resolv.conf and /dev/shm, and an infra
    container only when the pod shares one PID namespace.
container
    One process tree of a pod, run from an image as a runc (or crun) task under conmon,
    joining the sandbox's namespaces.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from runtime.model.lifecycle import ContainerState, SandboxState  # their home: the tables
from runtime.model.network import DnsConfig, PortMapping

__all__ = [
    "Capabilities",
    "Container",
    "ContainerConfig",
    "ContainerState",
    "Device",
    "DnsConfig",
    "IdMapping",
    "IdMappings",
    "Mount",
    "NamespaceMode",
    "NamespaceOptions",
    "PodMetadata",
    "PortMapping",
    "Propagation",
    "Resources",
    "Sandbox",
    "SandboxConfig",
    "SandboxState",
    "SecurityContext",
    "SecurityProfile",
    "UserNamespace",
]


class NamespaceMode(enum.Enum):
    """Which namespace a pod or container uses for one kind (CRI ``NamespaceMode``)."""

    POD = "pod"
    CONTAINER = "container"
    NODE = "node"
    TARGET = "target"


@dataclass(frozen=True, slots=True)
class IdMapping:
    """One line of a ``uid_map``/``gid_map``: ``length`` ids from ``container_id`` inside
    are ``host_id`` onwards outside."""

    container_id: int
    host_id: int
    length: int

    def line(self) -> str:
        return f"{self.container_id} {self.host_id} {self.length}\n"


# a mount's own (uids, gids) mappings (any lines, as a CRI Mount may carry)
IdMappings = tuple[tuple[IdMapping, ...], tuple[IdMapping, ...]]


@dataclass(frozen=True, slots=True)
class UserNamespace:
    """A pod's own user namespace (CRI mode POD): one uid and one gid mapping, each from
    container id 0 (checked where requests are read)."""

    uids: tuple[IdMapping, ...]
    gids: tuple[IdMapping, ...]

    @property
    def root(self) -> tuple[int, int]:
        """The host uid and gid of the namespace's root."""
        return self.uids[0].host_id, self.gids[0].host_id


@dataclass(frozen=True, slots=True)
class NamespaceOptions:
    """Network, PID and IPC namespace modes; ``target_id`` names the container for TARGET;
    ``userns`` the pod's own user namespace (None: the node's, CRI mode NODE)."""

    network: NamespaceMode = NamespaceMode.POD
    pid: NamespaceMode = NamespaceMode.CONTAINER
    ipc: NamespaceMode = NamespaceMode.POD
    target_id: str = ""
    userns: UserNamespace | None = None


class ProfileType(enum.Enum):
    RUNTIME_DEFAULT = "runtime/default"
    UNCONFINED = "unconfined"
    LOCALHOST = "localhost"


@dataclass(frozen=True, slots=True)
class SecurityProfile:
    """A seccomp or AppArmor profile choice."""

    type: ProfileType = ProfileType.RUNTIME_DEFAULT
    localhost_ref: str = ""


@dataclass(frozen=True, slots=True)
class HugepageLimit:
    page_size: str
    limit: int


@dataclass(frozen=True, slots=True)
class Resources:
    """Linux resource limits (CRI ``LinuxContainerResources``); 0 / empty means unset."""

    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit_in_bytes: int = 0
    oom_score_adj: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    unified: Mapping[str, str] = field(default_factory=dict)
    memory_swap_limit_in_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Capabilities to add to and drop from the default set (names like ``NET_ADMIN``, or
    ``ALL``)."""

    add: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    add_ambient: tuple[str, ...] = ()


class SupplementalGroupsPolicy(enum.Enum):
    """Which groups a container's process gets besides its primary gid: MERGE (the CRI's
    default) adds the groups the image's /etc/group lists the user in to the requested ones;
    STRICT gives only the requested ones."""

    MERGE = "Merge"
    STRICT = "Strict"


@dataclass(frozen=True, slots=True)
class SecurityContext:
    """A container's (or pod's) Linux security settings. ``run_as_user`` None means the
    image's user; ``run_as_username`` is resolved through the image's /etc/passwd."""

    privileged: bool = False
    capabilities: Capabilities = field(default_factory=Capabilities)
    namespaces: NamespaceOptions = field(default_factory=NamespaceOptions)
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_username: str = ""
    readonly_rootfs: bool = False
    supplemental_groups: tuple[int, ...] = ()
    supplemental_groups_policy: SupplementalGroupsPolicy = SupplementalGroupsPolicy.MERGE
    no_new_privs: bool = False
    masked_paths: tuple[str, ...] | None = None
    readonly_paths: tuple[str, ...] | None = None
    seccomp: SecurityProfile = field(
        default_factory=lambda: SecurityProfile(ProfileType.UNCONFINED)
    )
    apparmor: SecurityProfile = field(
        default_factory=lambda: SecurityProfile(ProfileType.UNCONFINED)
    )


@dataclass(frozen=True, slots=True)
class PodMetadata:
    """The pod's identity in Kubernetes: name, UID, namespace and attempt."""

    name: str
    uid: str
    namespace: str
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """What RunPodSandbox asks for."""

    metadata: PodMetadata
    hostname: str = ""
    log_directory: str = ""
    dns: DnsConfig | None = None
    port_mappings: tuple[PortMapping, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    security: SecurityContext = field(default_factory=SecurityContext)
    sysctls: Mapping[str, str] = field(default_factory=dict)
    overhead: Resources | None = None
    resources: Resources | None = None
    runtime_handler: str = ""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A pod sandbox as the runtime keeps it. ``namespace_paths`` maps ``net``/``ipc``/``uts``
    (and ``pid`` when there is an infra container) to the files that hold them; a kind the pod
    takes from the node is absent."""

    id: str
    config: SandboxConfig
    state: SandboxState
    created_at: int
    runtime_handler: str
    namespace_paths: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    hostname: str = ""
    ip: str = ""
    additional_ips: tuple[str, ...] = ()
    infra_container_id: str = ""
    infra_pid: int = 0
    state_dir: str = ""


class Propagation(enum.Enum):
    PRIVATE = "private"
    HOST_TO_CONTAINER = "rslave"
    BIDIRECTIONAL = "rshared"


@dataclass(frozen=True, slots=True)
class Mount:
    """A bind mount from the host (CRI ``Mount``), or, with ``image`` (an image id or
    reference), an image volume: that image's filesystem read-only, or its ``image_sub_path``
    directory, with no ``host_path``. ``uid_mappings``/``gid_mappings`` (what the kubelet
    sets on every mount of a pod in its own user namespace): the mount id-mapped, so files the
    host's id ``h`` owns appear owned by the id ``h`` maps to inside (host root as the pod's
    root); empty for a plain bind."""

    container_path: str
    host_path: str
    readonly: bool = False
    propagation: Propagation = Propagation.PRIVATE
    selinux_relabel: bool = False
    recursive_read_only: bool = False
    image: str = ""
    image_sub_path: str = ""
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()

    @property
    def idmapped(self) -> bool:
        """Whether the caller asked for this mount id-mapped."""
        return bool(self.uid_mappings or self.gid_mappings)


@dataclass(frozen=True, slots=True)
class Device:
    """A host device made available in the container (CRI ``Device``)."""

    container_path: str
    host_path: str
    permissions: str = "rwm"


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """What CreateContainer asks for. ``image`` is what the caller named (the kubelet: the
    image id) and ``user_specified_image`` the pod spec's name; ``envs`` keep their order
    (later entries win)."""

    name: str
    attempt: int = 0
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    envs: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    devices: tuple[Device, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    log_path: str = ""
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    resources: Resources | None = None
    security: SecurityContext = field(default_factory=SecurityContext)
    stop_signal: str = ""
    # Fully qualified CDI device names (vendor.com/class=name) from the CRI's CDI_devices.
    cdi_devices: tuple[str, ...] = ()
    # The name the pod spec gave (the kubelet puts the image id in ``image``).
    user_specified_image: str = ""


@dataclass(frozen=True, slots=True)
class ContainerUser:
    """The identity a container's process runs with (the spec's ``process.user``):
    ``groups`` are all its group ids, the primary one included."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Container:
    """A container as the runtime keeps it. ``image_id`` is the image's id (config digest);
    ``image_name`` what the caller named. ``log_path`` is absolute (the sandbox's log directory
    joined with the config's log path) or empty."""

    id: str
    sandbox_id: str
    config: ContainerConfig
    image_id: str
    image_name: str
    state: ContainerState
    created_at: int
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    log_path: str = ""
    runtime_handler: str = ""
    resources: Resources | None = None
    snapshot_key: str = ""
    bundle: str = ""
    user: ContainerUser | None = None
    apparmor_profile: str = ""  # the AppArmor profile applied ("" for none)
