"""CRI pod sandbox messages <-> the runtime's sandbox model.

Pure functions. Bad input raises :class:`runtime.errors.InvalidArgument` naming the field;
features pinnace does not have raise :class:`runtime.errors.Unimplemented`. Windows settings
and SELinux options are ignored (this is a Linux runtime without SELinux support).
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format

from cri.api.runtime.v1 import api_pb2 as pb
from cri.translate.containers import (
    groups_policy,
    groups_policy_to_pb,
    namespace_options,
    namespace_options_to_pb,
    resources,
    resources_to_pb,
    security_profile,
    security_profile_to_pb,
)
from runtime.errors import InvalidArgument
from runtime.model.network import DnsConfig, PortMapping, PortProtocol
from runtime.model.pods import (
    NamespaceMode,
    PodMetadata,
    ProfileType,
    Sandbox,
    SandboxConfig,
    SandboxState,
    SecurityContext,
)

__all__ = [
    "sandbox_config",
    "sandbox_config_to_pb",
    "sandbox_state_to_pb",
    "sandbox_status",
    "sandbox_status_response",
    "sandbox_summary",
    "sandbox_verbose_info",
]

_PROTOCOLS = {pb.TCP: PortProtocol.TCP, pb.UDP: PortProtocol.UDP, pb.SCTP: PortProtocol.SCTP}
_PROTOCOLS_PB = {v: k for k, v in _PROTOCOLS.items()}
_SANDBOX_STATES_PB = {
    SandboxState.READY: pb.SANDBOX_READY,
    SandboxState.NOTREADY: pb.SANDBOX_NOTREADY,
}


def sandbox_state_to_pb(state: SandboxState) -> pb.PodSandboxState:
    return _SANDBOX_STATES_PB[state]


def _metadata(msg: pb.PodSandboxConfig) -> PodMetadata:
    md = msg.metadata
    for name in ("name", "uid", "namespace"):
        if not getattr(md, name):
            raise InvalidArgument(f"metadata.{name} is empty: set the pod's {name}")
    return PodMetadata(name=md.name, uid=md.uid, namespace=md.namespace, attempt=md.attempt)


def _port_mapping(msg: pb.PortMapping, field: str) -> PortMapping:
    try:
        protocol = _PROTOCOLS[msg.protocol]
    except KeyError:
        raise InvalidArgument(f"{field}.protocol: unknown value {msg.protocol}") from None
    if not 1 <= msg.container_port <= 65535:
        raise InvalidArgument(f"{field}.container_port {msg.container_port} is not in 1..65535")
    if not 0 <= msg.host_port <= 65535:
        raise InvalidArgument(f"{field}.host_port {msg.host_port} is not in 0..65535")
    try:
        return PortMapping(
            protocol=protocol,
            container_port=msg.container_port,
            host_port=msg.host_port,
            host_ip=msg.host_ip,
        )
    except InvalidArgument as e:
        raise InvalidArgument(f"{field}.host_ip: {e}") from None


def _security(msg: pb.LinuxSandboxSecurityContext) -> SecurityContext:
    field = "linux.security_context"
    for name in ("run_as_user", "run_as_group"):
        if msg.HasField(name) and getattr(msg, name).value < 0:
            raise InvalidArgument(f"{field}.{name} is negative: ids are >= 0")
    for g in msg.supplemental_groups:
        if g < 0:
            raise InvalidArgument(f"{field}.supplemental_groups contains {g}: gids are >= 0")
    return SecurityContext(
        privileged=msg.privileged,
        namespaces=namespace_options(msg.namespace_options, field=f"{field}.namespace_options"),
        run_as_user=msg.run_as_user.value if msg.HasField("run_as_user") else None,
        run_as_group=msg.run_as_group.value if msg.HasField("run_as_group") else None,
        readonly_rootfs=msg.readonly_rootfs,
        supplemental_groups=tuple(msg.supplemental_groups),
        supplemental_groups_policy=groups_policy(
            msg.supplemental_groups_policy, f"{field}.supplemental_groups_policy"
        ),
        seccomp=security_profile(
            msg.seccomp if msg.HasField("seccomp") else None,
            msg.seccomp_profile_path,
            field=f"{field}.seccomp",
            default=ProfileType.UNCONFINED,
        ),
        apparmor=security_profile(
            msg.apparmor if msg.HasField("apparmor") else None,
            "",
            field=f"{field}.apparmor",
            default=ProfileType.RUNTIME_DEFAULT,
        ),
    )


def sandbox_config(msg: pb.PodSandboxConfig, *, runtime_handler: str) -> SandboxConfig:
    """What RunPodSandbox asks for, validated. Namespace modes are read literally: an absent
    ``namespace_options`` means POD for network, PID and IPC (as containerd reads it)."""
    metadata = _metadata(msg)
    if msg.log_directory and not posixpath.isabs(msg.log_directory):
        raise InvalidArgument(f"log_directory {msg.log_directory!r} must be an absolute path")
    dns = None
    if msg.HasField("dns_config"):
        d = msg.dns_config
        dns = DnsConfig(
            servers=tuple(d.servers), searches=tuple(d.searches), options=tuple(d.options)
        )
    linux = msg.linux
    return SandboxConfig(
        metadata=metadata,
        hostname=msg.hostname,
        log_directory=msg.log_directory,
        dns=dns,
        port_mappings=tuple(
            _port_mapping(p, f"port_mappings[{i}]") for i, p in enumerate(msg.port_mappings)
        ),
        labels=dict(msg.labels),
        annotations=dict(msg.annotations),
        cgroup_parent=linux.cgroup_parent,
        security=_security(linux.security_context),
        sysctls=dict(linux.sysctls),
        overhead=(
            resources(linux.overhead, field="linux.overhead")
            if linux.HasField("overhead")
            else None
        ),
        resources=(
            resources(linux.resources, field="linux.resources")
            if linux.HasField("resources")
            else None
        ),
        runtime_handler=runtime_handler,
    )


def _metadata_to_pb(md: PodMetadata) -> pb.PodSandboxMetadata:
    return pb.PodSandboxMetadata(
        name=md.name, uid=md.uid, namespace=md.namespace, attempt=md.attempt
    )


def sandbox_config_to_pb(cfg: SandboxConfig) -> pb.PodSandboxConfig:
    """The CRI form of ``cfg`` (verbose info, tests); ``sandbox_config`` of it gives ``cfg``
    back (``dns.domain``, which the CRI has no field for, is dropped)."""
    sc = cfg.security
    security = pb.LinuxSandboxSecurityContext(
        namespace_options=namespace_options_to_pb(sc.namespaces),
        readonly_rootfs=sc.readonly_rootfs,
        supplemental_groups=list(sc.supplemental_groups),
        supplemental_groups_policy=groups_policy_to_pb(sc.supplemental_groups_policy),
        privileged=sc.privileged,
        seccomp=security_profile_to_pb(sc.seccomp),
        apparmor=security_profile_to_pb(sc.apparmor),
    )
    if sc.run_as_user is not None:
        security.run_as_user.value = sc.run_as_user
    if sc.run_as_group is not None:
        security.run_as_group.value = sc.run_as_group
    linux = pb.LinuxPodSandboxConfig(
        cgroup_parent=cfg.cgroup_parent, security_context=security, sysctls=dict(cfg.sysctls)
    )
    if cfg.overhead is not None:
        linux.overhead.CopyFrom(resources_to_pb(cfg.overhead))
    if cfg.resources is not None:
        linux.resources.CopyFrom(resources_to_pb(cfg.resources))
    out = pb.PodSandboxConfig(
        metadata=_metadata_to_pb(cfg.metadata),
        hostname=cfg.hostname,
        log_directory=cfg.log_directory,
        port_mappings=[
            pb.PortMapping(
                protocol=_PROTOCOLS_PB[p.protocol],
                container_port=p.container_port,
                host_port=p.host_port,
                host_ip=p.host_ip,
            )
            for p in cfg.port_mappings
        ],
        labels=dict(cfg.labels),
        annotations=dict(cfg.annotations),
        linux=linux,
    )
    if cfg.dns is not None:
        out.dns_config.CopyFrom(
            pb.DNSConfig(
                servers=list(cfg.dns.servers),
                searches=list(cfg.dns.searches),
                options=list(cfg.dns.options),
            )
        )
    return out


def _host_network(sandbox: Sandbox) -> bool:
    return sandbox.config.security.namespaces.network is NamespaceMode.NODE


def sandbox_status(sandbox: Sandbox) -> pb.PodSandboxStatus:
    """PodSandboxStatus for ``sandbox``: its IPs (none for a host-network pod, as containerd
    reports) and its namespace options echoed back."""
    cfg = sandbox.config
    network = pb.PodSandboxNetworkStatus()
    if not _host_network(sandbox):
        network.ip = sandbox.ip
        network.additional_ips.extend(pb.PodIP(ip=ip) for ip in sandbox.additional_ips)
    return pb.PodSandboxStatus(
        id=sandbox.id,
        metadata=_metadata_to_pb(cfg.metadata),
        state=sandbox_state_to_pb(sandbox.state),
        created_at=sandbox.created_at,
        network=network,
        linux=pb.LinuxPodSandboxStatus(
            namespaces=pb.Namespace(options=namespace_options_to_pb(cfg.security.namespaces))
        ),
        labels=dict(cfg.labels),
        annotations=dict(cfg.annotations),
        runtime_handler=sandbox.runtime_handler,
    )


def sandbox_status_response(
    sandbox: Sandbox,
    *,
    info: Mapping[str, str] | None = None,
    containers_statuses: Iterable[pb.ContainerStatus] = (),
    timestamp_ns: int = 0,
) -> pb.PodSandboxStatusResponse:
    """The whole PodSandboxStatus answer: ``info`` only when the caller asked for verbose
    output; ``containers_statuses`` and ``timestamp_ns`` for kubelet's evented PLEG."""
    return pb.PodSandboxStatusResponse(
        status=sandbox_status(sandbox),
        info=dict(info or {}),
        containers_statuses=list(containers_statuses),
        timestamp=timestamp_ns,
    )


def sandbox_summary(sandbox: Sandbox) -> pb.PodSandbox:
    """The ListPodSandbox entry for ``sandbox``."""
    cfg = sandbox.config
    return pb.PodSandbox(
        id=sandbox.id,
        metadata=_metadata_to_pb(cfg.metadata),
        state=sandbox_state_to_pb(sandbox.state),
        created_at=sandbox.created_at,
        labels=dict(cfg.labels),
        annotations=dict(cfg.annotations),
        runtime_handler=sandbox.runtime_handler,
    )


def sandbox_verbose_info(sandbox: Sandbox, *, extra: Mapping[str, Any]) -> dict[str, str]:
    """Verbose PodSandboxStatus info, shaped like containerd's: key ``info`` holds JSON with
    ``pid``, ``namespaces`` (kind → path), ``config`` (the CRI config, proto field names),
    ``runtimeHandler`` and the rest of what the runtime keeps; ``extra`` (JSON-able, e.g.
    ``cniResult``, ``runtimeSpec``) is merged in last and wins."""
    body: dict[str, Any] = {
        "id": sandbox.id,
        "pid": sandbox.infra_pid,
        "status": sandbox.state.value,
        "namespaces": dict(sandbox.namespace_paths),
        "config": json_format.MessageToDict(
            sandbox_config_to_pb(sandbox.config), preserving_proto_field_name=True
        ),
        "runtimeHandler": sandbox.runtime_handler,
        "cgroupParent": sandbox.cgroup_parent,
        "hostname": sandbox.hostname,
        "infraContainerId": sandbox.infra_container_id,
        "stateDir": sandbox.state_dir,
    }
    body.update(extra)
    return {"info": json.dumps(body, sort_keys=True)}
