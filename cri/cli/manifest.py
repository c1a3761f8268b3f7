"""Kubernetes Pod manifests → CRI configs, for ``pinnace play``. Pure: no I/O, no RPCs.

Terms:
  plan       what running the manifest takes (:class:`PodPlan`): the ``PodSandboxConfig``, one
             ``ContainerConfig`` per init and regular container, the host directories to create
             first (emptyDir volumes, ``DirectoryOrCreate`` hostPaths, subPaths) and the hostPaths
             that must already exist.
  play root  the directory under which emptyDir volumes live: ``<play root>/<pod uid>/<volume>``.

The translation follows what kubelet sends for the same pod (labels ``io.kubernetes.pod.*``, log
paths ``<log root>/<ns>_<name>_<uid>/<container>/0.log``, cpu shares and quota from millicores,
namespace modes, ``$(VAR)`` expansion). Its inputs come from the modules of the other concerns,
whose public names are re-exported here: :mod:`cri.cli.manifest_load` (YAML → ``V1Pod``, strict
about unknown fields), :mod:`cri.cli.manifest_validate` (the API server's checks) and
:mod:`cri.cli.quantity` (quantities and kubelet's CPU arithmetic).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli.manifest_load import load_pod, pod_from_dict
from cri.cli.manifest_validate import (
    MAX_DNS_SEARCHES,
    MAX_DNS_SERVERS,
    MOUNT_PROPAGATION,
    PORT_PROTOCOLS,
    SECCOMP_PROFILES,
    validate,
)
from cri.cli.quantity import (
    CPU_PERIOD,
    MAX_SHARES,
    MIN_QUOTA,
    MIN_SHARES,
    cpu_quota,
    cpu_shares,
    int_value,
    milli_cpu,
    parse_quantity,
)
from runtime.errors import FailedPrecondition

if TYPE_CHECKING:
    from kubernetes.client import V1Container, V1Pod, V1SecurityContext

__all__ = [
    "CONTAINER_NAME_LABEL",
    "CPU_PERIOD",
    "DEFAULT_LOG_ROOT",
    "DEFAULT_NAMESPACE",
    "DEFAULT_PLAY_ROOT",
    "GRACE_PERIOD_ANNOTATION",
    "LOG_DIRECTORY_ANNOTATION",
    "MAX_DNS_SEARCHES",
    "MAX_DNS_SERVERS",
    "MAX_SHARES",
    "MIN_QUOTA",
    "MIN_SHARES",
    "POD_NAMESPACE_LABEL",
    "POD_NAME_LABEL",
    "POD_UID_LABEL",
    "VOLUME_DIRECTORY_ANNOTATION",
    "ContainerPlan",
    "HostPathCheck",
    "PodPlan",
    "check_run_as_non_root",
    "cpu_quota",
    "cpu_shares",
    "expand",
    "load_pod",
    "milli_cpu",
    "parse_quantity",
    "parse_resolv_conf",
    "plan_pod",
    "pod_from_dict",
    "pull_policy",
    "validate",
]

DEFAULT_LOG_ROOT = "/var/log/pods"
DEFAULT_PLAY_ROOT = "/var/lib/pinnace-play"
# ids per pod in its own user namespace (the kubelet's default: 0-65535 inside)
USERNS_LENGTH = 65536
DEFAULT_NAMESPACE = "default"
#: Annotations play adds to the sandbox so ``play --down`` can clean up what it created.
LOG_DIRECTORY_ANNOTATION = "io.pinnace.play.log-directory"
VOLUME_DIRECTORY_ANNOTATION = "io.pinnace.play.volume-directory"
GRACE_PERIOD_ANNOTATION = "io.kubernetes.pod.terminationGracePeriod"
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"


@dataclass(frozen=True, slots=True)
class HostPathCheck:
    """A hostPath that must already exist as ``kind`` (``Directory``, ``File``, ``Socket``,
    ``CharDevice`` or ``BlockDevice``) before the pod runs; ``field`` names it for errors."""

    field: str
    path: str
    kind: str


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """One container to create: its CRI config, the pull policy (``Always``, ``IfNotPresent``
    or ``Never``) and whether it must run as a non-root user (checked against the image)."""

    name: str
    config: pb.ContainerConfig
    pull_policy: str
    run_as_non_root: bool


@dataclass(frozen=True, slots=True)
class PodPlan:
    """Everything ``play`` needs to run a manifest; see the module docstring."""

    name: str
    namespace: str
    uid: str
    sandbox: pb.PodSandboxConfig
    runtime_handler: str
    init_containers: tuple[ContainerPlan, ...]
    containers: tuple[ContainerPlan, ...]
    directories: tuple[str, ...]
    files: tuple[str, ...]
    host_path_checks: tuple[HostPathCheck, ...]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$(NAME)`` becomes the value of NAME when defined and
    stays as written otherwise; ``$$`` escapes a ``$``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("$(", i):
            end = text.find(")", i + 2)
            if end != -1:
                out.append(env.get(text[i + 2 : end], text[i : end + 1]))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def pull_policy(container: V1Container) -> str:
    """The container's imagePullPolicy, defaulted as the API server does: ``Always`` for
    ``:latest`` or untagged images, ``IfNotPresent`` otherwise."""
    if container.image_pull_policy:
        return str(container.image_pull_policy)
    image = container.image or ""
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf; ``domain`` counts as a search."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            options.extend(words[1:])
    return servers, searches, options


def check_run_as_non_root(plan: ContainerPlan, *, image_uid: int | None, image_user: str) -> None:
    """kubelet's runAsNonRoot check, once the image's user is known. Raises FailedPrecondition."""
    if not plan.run_as_non_root:
        return
    sc = plan.config.linux.security_context
    uid = sc.run_as_user.value if sc.HasField("run_as_user") else image_uid
    if uid is None and image_user and image_user != "root":
        raise FailedPrecondition(
            f"container {plan.name} has runAsNonRoot and image has non-numeric user"
            f" ({image_user}), cannot verify user is non-root"
        )
    if uid is None or uid == 0:
        raise FailedPrecondition(
            f"container {plan.name} has runAsNonRoot and image will run as root"
        )


# -- translation -------------------------------------------------------------------------
def plan_pod(
    pod: V1Pod,
    *,
    uid: str,
    log_root: str = DEFAULT_LOG_ROOT,
    play_root: str = DEFAULT_PLAY_ROOT,
    host_resolv_conf: str | None = None,
    userns_host_id: int = USERNS_LENGTH,
) -> PodPlan:
    """Validate ``pod`` and translate it into CRI configs. ``uid`` becomes the pod's uid
    (``metadata.uid`` if the manifest has one wins); ``host_resolv_conf`` is the node's resolv.conf
    text, which every dnsPolicy but ``None`` starts from (play has no cluster DNS, so
    ``ClusterFirst`` falls back to ``Default`` as kubelet does without one). For
    ``hostUsers: false`` the pod gets its own user namespace as the kubelet sends it: ids
    0-65535 mapped from ``userns_host_id`` (see :func:`free_userns_host_id`), the mappings on
    the pod, on every container and on every mount (which the runtime then id-maps)."""
    validate(pod)
    meta, spec = pod.metadata, pod.spec
    assert meta is not None and spec is not None and meta.name
    name = meta.name
    namespace = meta.namespace or DEFAULT_NAMESPACE
    uid = meta.uid or uid
    log_directory = posixpath.join(log_root, f"{namespace}_{name}_{uid}")
    volume_directory = posixpath.join(play_root, uid)
    identity = {POD_NAME_LABEL: name, POD_NAMESPACE_LABEL: namespace, POD_UID_LABEL: uid}
    grace = spec.termination_grace_period_seconds
    namespaces = pb.NamespaceOption(
        network=pb.NODE if spec.host_network else pb.POD,
        pid=pb.NODE if spec.host_pid else pb.POD if spec.share_process_namespace else pb.CONTAINER,
        ipc=pb.NODE if spec.host_ipc else pb.POD,
    )
    userns: pb.UserNamespace | None = None
    if spec.host_users is False:
        mapping = pb.IDMapping(host_id=userns_host_id, container_id=0, length=USERNS_LENGTH)
        userns = pb.UserNamespace(mode=pb.POD, uids=[mapping], gids=[mapping])
        namespaces.userns_options.CopyFrom(userns)
    pod_sc = spec.security_context
    all_containers = [*(spec.init_containers or []), *spec.containers]
    sandbox_sc = pb.LinuxSandboxSecurityContext(
        namespace_options=namespaces,
        privileged=any(
            c.security_context and c.security_context.privileged for c in all_containers
        ),
    )
    supplemental: list[int] = []
    if pod_sc is not None:
        _user_fields(sandbox_sc, pod_sc)
        supplemental = [
            *(pod_sc.supplemental_groups or []),
            *([pod_sc.fs_group] if pod_sc.fs_group is not None else []),
        ]
        sandbox_sc.supplemental_groups.extend(supplemental)
        sandbox_sc.supplemental_groups_policy = _groups_policy(pod_sc)
    sandbox = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
        hostname="" if spec.host_network else _hostname(spec.hostname or name),
        log_directory=log_directory,
        port_mappings=_port_mappings(spec),
        labels={**(meta.labels or {}), **identity},
        annotations={
            **(meta.annotations or {}),
            "kubernetes.io/config.source": "file",
            LOG_DIRECTORY_ANNOTATION: log_directory,
            VOLUME_DIRECTORY_ANNOTATION: volume_directory,
            GRACE_PERIOD_ANNOTATION: str(30 if grace is None else grace),
        },
        linux=pb.LinuxPodSandboxConfig(
            security_context=sandbox_sc,
            sysctls={s.name: s.value for s in ((pod_sc.sysctls if pod_sc else None) or [])},
        ),
    )
    dns = _dns_config(spec, host_resolv_conf)
    if dns is not None:
        sandbox.dns_config.CopyFrom(dns)

    volumes = {v.name: v for v in spec.volumes or []}
    directories: list[str] = [
        posixpath.join(volume_directory, v.name)
        for v in volumes.values()
        if v.empty_dir is not None
    ]
    files: list[str] = []
    checks: list[HostPathCheck] = []
    for i, v in enumerate(spec.volumes or []):
        if v.host_path is None:
            continue
        kind = v.host_path.type or ""
        if kind == "DirectoryOrCreate":
            directories.append(v.host_path.path)
        elif kind == "FileOrCreate":
            files.append(v.host_path.path)
        elif kind:
            checks.append(HostPathCheck(f"spec.volumes[{i}].hostPath", v.host_path.path, kind))

    def plans(containers: Sequence[V1Container]) -> tuple[ContainerPlan, ...]:
        out = []
        for c in containers:
            config = _container_config(
                c, pod_sc=pod_sc, namespaces=namespaces, supplemental=supplemental,
                identity=identity, grace=grace, volumes=volumes,
                volume_directory=volume_directory, directories=directories, userns=userns,
            )  # fmt: skip
            sc = c.security_context
            non_root = bool(
                sc.run_as_non_root
                if sc is not None and sc.run_as_non_root is not None
                else pod_sc is not None and pod_sc.run_as_non_root
            )
            out.append(ContainerPlan(c.name, config, pull_policy(c), non_root))
        return tuple(out)

    return PodPlan(
        name=name,
        namespace=namespace,
        uid=uid,
        sandbox=sandbox,
        runtime_handler=spec.runtime_class_name or "",
        init_containers=plans(spec.init_containers or []),
        containers=plans(spec.containers),
        directories=tuple(dict.fromkeys(directories)),
        files=tuple(files),
        host_path_checks=tuple(checks),
    )


def _hostname(name: str) -> str:
    """kubelet truncates a pod name used as hostname to 63 characters, without a trailing
    '-' or '.'."""
    return name[:63].rstrip("-.")


def _port_mappings(spec: Any) -> list[pb.PortMapping]:
    out = []
    for c in spec.containers:
        for port in c.ports or []:
            host_port = port.host_port or (port.container_port if spec.host_network else 0)
            if host_port:
                out.append(
                    pb.PortMapping(
                        protocol=PORT_PROTOCOLS[port.protocol or "TCP"],
                        container_port=port.container_port,
                        host_port=host_port,
                        host_ip=port.host_ip or "",
                    )
                )
    return out


def _dns_config(spec: Any, host_resolv_conf: str | None) -> pb.DNSConfig | None:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if (spec.dns_policy or "ClusterFirst") != "None" and host_resolv_conf is not None:
        servers, searches, options = parse_resolv_conf(host_resolv_conf)
    config = spec.dns_config
    if config is not None:
        servers += [s for s in config.nameservers or [] if s not in servers]
        searches += [s for s in config.searches or [] if s not in searches]
        overrides = {
            o.name: o.name if o.value is None else f"{o.name}:{o.value}"
            for o in config.options or []
        }
        options = [o for o in options if o.split(":", 1)[0] not in overrides] + list(
            overrides.values()
        )
    if not (servers or searches or options):
        return None
    return pb.DNSConfig(
        servers=servers[:MAX_DNS_SERVERS], searches=searches[:MAX_DNS_SEARCHES], options=options
    )


def _user_fields(target: Any, sc: Any) -> None:
    """Copy the user and profile fields a pod- or container-level security context shares."""
    if sc.run_as_user is not None:
        target.run_as_user.value = sc.run_as_user
    if sc.run_as_group is not None:
        target.run_as_group.value = sc.run_as_group
    if sc.se_linux_options is not None:
        o = sc.se_linux_options
        target.selinux_options.CopyFrom(
            pb.SELinuxOption(
                user=o.user or "", role=o.role or "", type=o.type or "", level=o.level or ""
            )
        )
    if sc.seccomp_profile is not None:
        target.seccomp.CopyFrom(
            pb.SecurityProfile(profile_type=SECCOMP_PROFILES[sc.seccomp_profile.type])
        )
    apparmor = getattr(sc, "app_armor_profile", None)
    if apparmor is not None:
        kind = pb.SecurityProfile.ProfileType.Value(apparmor.type)
        target.apparmor.CopyFrom(
            pb.SecurityProfile(profile_type=kind, localhost_ref=apparmor.localhost_profile or "")
        )


def _groups_policy(pod_sc: Any) -> pb.SupplementalGroupsPolicy:
    """The pod's ``supplementalGroupsPolicy`` (``Merge`` when unset)."""
    policy = getattr(pod_sc, "supplemental_groups_policy", None)
    return pb.Strict if policy == "Strict" else pb.Merge


def _container_config(
    c: V1Container,
    *,
    pod_sc: Any,
    namespaces: pb.NamespaceOption,
    supplemental: Sequence[int],
    identity: Mapping[str, str],
    grace: int | None,
    volumes: Mapping[str, Any],
    volume_directory: str,
    directories: list[str],
    userns: pb.UserNamespace | None,
) -> pb.ContainerConfig:
    env: dict[str, str] = {}
    for var in c.env or []:
        env[var.name] = expand(var.value or "", env)
    ports = [
        {"name": p.name, "containerPort": p.container_port, "protocol": p.protocol or "TCP"}
        | ({"hostPort": p.host_port} if p.host_port else {})
        for p in c.ports or []
    ]
    annotations = {
        "io.kubernetes.container.restartCount": "0",
        "io.kubernetes.container.terminationMessagePath": c.termination_message_path
        or "/dev/termination-log",
        "io.kubernetes.container.terminationMessagePolicy": c.termination_message_policy or "File",
        GRACE_PERIOD_ANNOTATION: str(30 if grace is None else grace),
    }
    if ports:
        annotations["io.kubernetes.container.ports"] = json.dumps(
            [{k: v for k, v in p.items() if v is not None} for p in ports]
        )
    security = pb.LinuxContainerSecurityContext(
        namespace_options=namespaces, supplemental_groups=supplemental
    )
    if pod_sc is not None:
        _user_fields(security, pod_sc)
        security.supplemental_groups_policy = _groups_policy(pod_sc)
    sc: V1SecurityContext | None = c.security_context
    if sc is not None:
        _user_fields(security, sc)
        security.privileged = bool(sc.privileged)
        security.readonly_rootfs = bool(sc.read_only_root_filesystem)
        security.no_new_privs = sc.allow_privilege_escalation is False
        if sc.capabilities is not None:
            security.capabilities.add_capabilities.extend(sc.capabilities.add or [])
            security.capabilities.drop_capabilities.extend(sc.capabilities.drop or [])
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=c.name, attempt=0),
        image=pb.ImageSpec(image=c.image or ""),
        command=[expand(x, env) for x in c.command or []],
        args=[expand(x, env) for x in c.args or []],
        working_dir=c.working_dir or "",
        envs=[pb.KeyValue(key=k, value=v.encode()) for k, v in env.items()],
        mounts=_mounts(c, volumes, volume_directory, directories, userns),
        labels={**identity, CONTAINER_NAME_LABEL: c.name},
        annotations=annotations,
        log_path=f"{c.name}/0.log",
        stdin=bool(c.stdin),
        stdin_once=bool(c.stdin_once),
        tty=bool(c.tty),
        linux=pb.LinuxContainerConfig(resources=_resources(c), security_context=security),
    )


def _mounts(
    c: V1Container,
    volumes: Mapping[str, Any],
    volume_directory: str,
    directories: list[str],
    userns: pb.UserNamespace | None,
) -> list[pb.Mount]:
    out = []
    for vm in c.volume_mounts or []:
        volume = volumes[vm.name]
        if volume.empty_dir is not None:
            source = posixpath.join(volume_directory, volume.name)
        else:
            source = volume.host_path.path
        if vm.sub_path:
            source = posixpath.join(source, vm.sub_path)
            directories.append(source)  # kubelet creates a missing subPath as a directory
        out.append(
            pb.Mount(
                container_path=vm.mount_path,
                host_path=source,
                readonly=bool(vm.read_only),
                propagation=MOUNT_PROPAGATION[vm.mount_propagation],
                recursive_read_only=vm.recursive_read_only == "Enabled",
                # the kubelet sets the pod's mappings on every mount of such a pod
                uidMappings=list(userns.uids) if userns is not None else [],
                gidMappings=list(userns.gids) if userns is not None else [],
            )
        )
    return out


def free_userns_host_id(taken: Iterable[int]) -> int:
    """The lowest 65536-id block above the node's own ids (0-65535) that no pod's mapping
    in ``taken`` starts at: the kubelet's default allocation (one block per pod)."""
    used = set(taken)
    for block in range(1, (1 << 32) // USERNS_LENGTH):
        if block * USERNS_LENGTH not in used:
            return block * USERNS_LENGTH
    raise FailedPrecondition("every user-namespace id range of this node is taken")


def _resources(c: V1Container) -> pb.LinuxContainerResources:
    """kubelet's cgroup figures: shares from the cpu request (the limit when there is no
    request), quota over a 100 ms period from the cpu limit, the memory limit in bytes."""
    limits = (c.resources.limits if c.resources else None) or {}
    requests = (c.resources.requests if c.resources else None) or {}
    out = pb.LinuxContainerResources()
    cpu_request = requests.get("cpu", limits.get("cpu"))
    out.cpu_shares = cpu_shares(milli_cpu(cpu_request) if cpu_request is not None else 0)
    if "cpu" in limits:
        out.cpu_period = CPU_PERIOD
        out.cpu_quota = cpu_quota(milli_cpu(limits["cpu"]))
    if "memory" in limits:
        out.memory_limit_in_bytes = int_value(limits["memory"])
    for key, value in limits.items():
        if key.startswith("hugepages-"):
            size = int_value(key.removeprefix("hugepages-"))
            out.hugepage_limits.append(
                pb.HugepageLimit(page_size=_page_size(size), limit=int_value(value))
            )
    return out


def _page_size(size: int) -> str:
    """kubelet's names for huge page sizes: 2097152 → ``2MB``, 1073741824 → ``1GB``."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
