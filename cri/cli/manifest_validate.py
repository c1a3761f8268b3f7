"""Validation of a parsed Pod, as the API server would do it, for ``pinnace play``. Pure.

Validation covers the subset pinnace runs, in the API server's words
(``spec.containers[0].name: Invalid value: ...``); fields that would change what runs but cannot
be honoured here (Secret/ConfigMap volumes, ``valueFrom``, lifecycle hooks, sidecars, host
aliases, user namespaces) are refused by name. Fields that only matter to a scheduler or to a
controlling kubelet (probes, affinity, tolerations, restartPolicy, service accounts,
imagePullSecrets) are accepted and ignored: play runs each container once.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli.quantity import parse_quantity
from runtime.errors import InvalidArgument

if TYPE_CHECKING:
    from kubernetes.client import V1Container, V1Pod

MAX_DNS_SERVERS = 3
MAX_DNS_SEARCHES = 32
# The Kubernetes values pinnace supports, mapped to the CRI values the translation sends.
MOUNT_PROPAGATION = {
    None: pb.PROPAGATION_PRIVATE,
    "None": pb.PROPAGATION_PRIVATE,
    "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
}
PORT_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}
SECCOMP_PROFILES = {
    "RuntimeDefault": pb.SecurityProfile.RuntimeDefault,
    "Unconfined": pb.SecurityProfile.Unconfined,
}

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(rf"^{_LABEL}$")
_DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_HOST_PATH_TYPES = (
    "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
    "BlockDevice",
)  # fmt: skip


def invalid_pod_message(name: str, errs: Sequence[str]) -> str:
    """The API server's message for a Pod named ``name`` with field errors ``errs``."""
    body = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
    return f'Pod "{name}" is invalid: {body}'


# -- small validators --------------------------------------------------------------------
_LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character"
)
_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-'"
    " or '.', and must start and end with an alphanumeric character"
)
_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', start and end with an"
    " alphanumeric character and be at most 63 characters"
)


def _label_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    return None if _DNS_LABEL.match(value) else _LABEL_RULE


def _subdomain_error(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    return None if _DNS_SUBDOMAIN.match(value) else _SUBDOMAIN_RULE


def _qualified_name_error(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or _subdomain_error(prefix)):
        return "prefix part " + _SUBDOMAIN_RULE
    if len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return "name part " + _NAME_RULE
    return None


def _label_value_error(value: str) -> str | None:
    if value and (len(value) > 63 or not _QUALIFIED_NAME.match(value)):
        return "a valid label value must be empty or " + _NAME_RULE.removeprefix("must ")
    return None


def _port_name_error(value: str) -> str | None:
    if len(value) > 15 or not _SVC_NAME.match(value) or "--" in value:
        return "must be an IANA_SVC_NAME (at most 15 lowercase alphanumerics or '-')"
    return None if re.search("[a-z]", value) else "must contain at least one letter"


def _ip_error(text: str) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return "must be a valid IP address"
    return None


class _Errors:
    """Field errors collected in the API server's words (``field: Kind: detail``)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, field: str, kind: str, detail: str = "") -> None:
        self.items.append(f"{field}: {kind}" + (f": {detail}" if detail else ""))

    def check(self, field: str, value: Any, reason: str | Literal[False] | None) -> None:
        """Record ``Invalid value`` when ``reason`` (a validator's answer) is not None."""
        if reason:
            self.add(field, f"Invalid value: {json.dumps(value)}", reason)

    def unsupported(self, field: str, value: Any = None, detail: str = "") -> None:
        kind = "Unsupported value" + ("" if value is None else f": {json.dumps(value)}")
        self.add(field, kind, detail)


# -- validation --------------------------------------------------------------------------
_REFUSED_SPEC = {
    "ephemeral_containers": "ephemeralContainers",
    "host_aliases": "hostAliases",
    "resource_claims": "resourceClaims",
    "resources": "resources",
    "hostname_override": "hostnameOverride",
}
_REFUSED_CONTAINER = {
    "env_from": "envFrom",
    "lifecycle": "lifecycle",
    "volume_devices": "volumeDevices",
}
_DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
_NOT_PLAYABLE = "pinnace play cannot honour this field"


def validate(pod: V1Pod) -> None:
    """Validate what pinnace runs, as the API server would; raises InvalidArgument listing
    every problem, each naming its field."""
    errs = _Errors()
    meta = pod.metadata
    name = (meta.name if meta else None) or ""
    if not name:
        errs.add("metadata.name", "Required value", "generateName is not supported")
    errs.check("metadata.name", name, name and _subdomain_error(name))
    if meta is not None:
        namespace = meta.namespace or ""
        errs.check("metadata.namespace", namespace, namespace and _label_error(namespace))
        for key, value in (meta.labels or {}).items():
            errs.check("metadata.labels", key, _qualified_name_error(key))
            errs.check(f"metadata.labels[{key}]", value, _label_value_error(str(value)))
        for key in meta.annotations or {}:
            errs.check("metadata.annotations", key, _qualified_name_error(key))
    assert pod.spec is not None  # pod_from_dict requires it
    _validate_spec(pod.spec, errs)
    if errs.items:
        raise InvalidArgument(invalid_pod_message(name, errs.items))


def _validate_spec(spec: Any, errs: _Errors) -> None:
    for attr, key in _REFUSED_SPEC.items():
        if getattr(spec, attr, None):
            errs.unsupported(f"spec.{key}", detail=_NOT_PLAYABLE)
    if spec.host_users is False:
        # the API server's rule: a pod in its own user namespace uses none of the node's
        for attr, key in (("host_network", "hostNetwork"), ("host_ipc", "hostIPC"),
                          ("host_pid", "hostPID")):  # fmt: skip
            if getattr(spec, attr, None):
                errs.add(f"spec.{key}", "Forbidden", "when `hostUsers` is false")
    policy = getattr(spec.security_context, "supplemental_groups_policy", None)
    if policy not in (None, "Merge", "Strict"):
        errs.unsupported("spec.securityContext.supplementalGroupsPolicy", policy)
    if spec.os and spec.os.name != "linux":
        errs.unsupported("spec.os.name", spec.os.name, "pinnace runs linux pods only")
    errs.check("spec.hostname", spec.hostname, spec.hostname and _label_error(spec.hostname))
    errs.check("spec.subdomain", spec.subdomain, spec.subdomain and _label_error(spec.subdomain))
    if not spec.containers:
        errs.add("spec.containers", "Required value")
    volumes = _validate_volumes(spec.volumes or [], errs)
    seen: set[str] = set()
    host_ports: set[tuple[int, str, str]] = set()
    for key, containers in (
        ("initContainers", spec.init_containers),
        ("containers", spec.containers),
    ):
        for i, container in enumerate(containers or []):
            field = f"spec.{key}[{i}]"
            if container.name in seen:
                errs.add(f"{field}.name", f"Duplicate value: {json.dumps(container.name)}")
            seen.add(container.name)
            _validate_container(container, field, volumes, spec, host_ports, errs)
            if key == "initContainers" and container.restart_policy:
                errs.unsupported(f"{field}.restartPolicy", detail="sidecars are not supported")
    policy = spec.dns_policy or "ClusterFirst"
    if policy not in _DNS_POLICIES:
        errs.unsupported("spec.dnsPolicy", policy, f"supported values: {', '.join(_DNS_POLICIES)}")
    dns = spec.dns_config
    if policy == "None" and not (dns and dns.nameservers):
        errs.add("spec.dnsConfig.nameservers", "Required value", "needed when dnsPolicy is None")
    if dns is not None:
        if len(dns.nameservers or []) > MAX_DNS_SERVERS:
            errs.add("spec.dnsConfig.nameservers", f"Too many: must have at most {MAX_DNS_SERVERS}")
        for j, server in enumerate(dns.nameservers or []):
            errs.check(f"spec.dnsConfig.nameservers[{j}]", server, _ip_error(server))
        if len(dns.searches or []) > MAX_DNS_SEARCHES:
            errs.add("spec.dnsConfig.searches", f"Too many: must have at most {MAX_DNS_SEARCHES}")
        for j, option in enumerate(dns.options or []):
            if not option.name:
                errs.add(f"spec.dnsConfig.options[{j}].name", "Required value")
    if spec.security_context is not None:
        for j, sysctl in enumerate(spec.security_context.sysctls or []):
            if not sysctl.name:
                errs.add(f"spec.securityContext.sysctls[{j}].name", "Required value")
        _validate_security_context(spec.security_context, "spec.securityContext", errs)


def _validate_volumes(volumes: Sequence[Any], errs: _Errors) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, volume in enumerate(volumes):
        field = f"spec.volumes[{i}]"
        errs.check(f"{field}.name", volume.name, _label_error(volume.name or "-"))
        if volume.name in out:
            errs.add(f"{field}.name", f"Duplicate value: {json.dumps(volume.name)}")
        sources = [
            json_key
            for attr, json_key in type(volume).attribute_map.items()
            if attr != "name" and getattr(volume, attr) is not None
        ]
        if len(sources) != 1:
            errs.add(field, "Required value", "must specify exactly one volume type")
            continue
        if sources[0] not in ("emptyDir", "hostPath"):
            errs.unsupported(f"{field}.{sources[0]}", detail="only emptyDir and hostPath volumes")
            continue
        if volume.empty_dir is not None and volume.empty_dir.medium:
            errs.unsupported(f"{field}.emptyDir.medium", volume.empty_dir.medium, _NOT_PLAYABLE)
        if volume.host_path is not None:
            path, kind = volume.host_path.path or "", volume.host_path.type or ""
            if not posixpath.isabs(path) or ".." in path.split("/"):
                errs.check(f"{field}.hostPath.path", path, "must be absolute, without '..'")
            if kind not in _HOST_PATH_TYPES:
                errs.unsupported(f"{field}.hostPath.type", kind)
        out[volume.name] = volume
    return out


def _validate_container(
    c: V1Container,
    field: str,
    volumes: Mapping[str, Any],
    spec: Any,
    host_ports: set[tuple[int, str, str]],
    errs: _Errors,
) -> None:
    errs.check(f"{field}.name", c.name, _label_error(c.name))
    if not c.image:
        errs.add(f"{field}.image", "Required value")
    if c.image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
        errs.unsupported(f"{field}.imagePullPolicy", c.image_pull_policy)
    for attr, key in _REFUSED_CONTAINER.items():
        if getattr(c, attr, None):
            errs.unsupported(f"{field}.{key}", detail=_NOT_PLAYABLE)
    for j, env in enumerate(c.env or []):
        bad_name = not env.name or "=" in env.name
        errs.check(f"{field}.env[{j}].name", env.name or "", bad_name and "must not contain '='")
        if env.value_from is not None:
            errs.unsupported(
                f"{field}.env[{j}].valueFrom",
                detail="pinnace play has no API server to resolve it; give a literal value",
            )
    for j, port in enumerate(c.ports or []):
        _validate_port(port, f"{field}.ports[{j}]", spec, host_ports, errs)
    _validate_resources(c, field, errs)
    paths: set[str] = set()
    privileged = bool(c.security_context and c.security_context.privileged)
    for j, vm in enumerate(c.volume_mounts or []):
        mfield = f"{field}.volumeMounts[{j}]"
        if vm.name not in volumes:
            errs.add(f"{mfield}.name", f"Not found: {json.dumps(vm.name)}")
        path = vm.mount_path or ""
        errs.check(f"{mfield}.mountPath", path, not posixpath.isabs(path) and "must be absolute")
        errs.check(f"{mfield}.mountPath", path, path in paths and "must be unique")
        paths.add(path)
        sub = vm.sub_path or ""
        bad_sub = posixpath.isabs(sub) or ".." in sub.split("/")
        errs.check(f"{mfield}.subPath", sub, bad_sub and "must be relative, without '..'")
        if vm.sub_path_expr:
            errs.unsupported(f"{mfield}.subPathExpr", detail=_NOT_PLAYABLE)
        if vm.mount_propagation not in MOUNT_PROPAGATION:
            errs.unsupported(f"{mfield}.mountPropagation", vm.mount_propagation)
        elif vm.mount_propagation == "Bidirectional" and not privileged:
            errs.add(f"{mfield}.mountPropagation", "Forbidden", "Bidirectional needs privileged")
        if vm.recursive_read_only not in (None, "Disabled", "Enabled", "IfPossible"):
            errs.unsupported(f"{mfield}.recursiveReadOnly", vm.recursive_read_only)
        elif vm.recursive_read_only in ("Enabled", "IfPossible") and not vm.read_only:
            errs.add(f"{mfield}.recursiveReadOnly", "Forbidden", "needs readOnly: true")
    if c.security_context is not None:
        _validate_security_context(c.security_context, f"{field}.securityContext", errs)


def _validate_port(
    port: Any, field: str, spec: Any, host_ports: set[tuple[int, str, str]], errs: _Errors
) -> None:
    in_range = "must be between 1 and 65535, inclusive"
    container_port, host_port = port.container_port or 0, port.host_port or 0
    errs.check(
        f"{field}.containerPort", container_port, not 1 <= container_port <= 65535 and in_range
    )
    errs.check(f"{field}.hostPort", host_port, not 0 <= host_port <= 65535 and in_range)
    protocol = port.protocol or "TCP"
    if protocol not in PORT_PROTOCOLS:
        errs.unsupported(f"{field}.protocol", protocol, 'supported values: "SCTP", "TCP", "UDP"')
    errs.check(f"{field}.name", port.name, port.name and _port_name_error(port.name))
    errs.check(f"{field}.hostIP", port.host_ip, port.host_ip and _ip_error(port.host_ip))
    if spec.host_network:
        mismatch = bool(host_port) and host_port != container_port
        errs.check(
            f"{field}.hostPort",
            host_port,
            mismatch and "must match `containerPort` when `hostNetwork` is true",
        )
        host_port = container_port
    if host_port:
        key = (host_port, protocol, port.host_ip or "")
        if key in host_ports:
            errs.add(f"{field}.hostPort", f'Duplicate value: "{host_port}/{protocol}"')
        host_ports.add(key)


def _validate_resources(c: V1Container, field: str, errs: _Errors) -> None:
    resources = c.resources
    if resources is None:
        return
    if resources.claims:
        errs.unsupported(f"{field}.resources.claims", detail=_NOT_PLAYABLE)
    parsed: dict[str, dict[str, Decimal]] = {"limits": {}, "requests": {}}
    for kind, values in parsed.items():
        for key, value in (getattr(resources, kind) or {}).items():
            rfield = f"{field}.resources.{kind}[{key}]"
            hugepages = key.startswith("hugepages-")
            if key not in ("cpu", "memory", "ephemeral-storage") and not hugepages:
                errs.unsupported(
                    rfield, detail="cpu, memory, ephemeral-storage or hugepages-<size>"
                )
                continue
            try:
                if hugepages:
                    parse_quantity(key.removeprefix("hugepages-"))
                values[key] = parse_quantity(value)
            except InvalidArgument as exc:
                errs.check(rfield, value, str(exc))
    for key, request in parsed["requests"].items():
        limit = parsed["limits"].get(key)
        if limit is not None and request > limit:
            shown = (resources.limits or {})[key], (resources.requests or {})[key]
            reason = f"must be less than or equal to {key} limit of {shown[0]}"
            errs.check(f"{field}.resources.requests[{key}]", shown[1], reason)


def _validate_security_context(sc: Any, field: str, errs: _Errors) -> None:
    if getattr(sc, "privileged", None) and getattr(sc, "allow_privilege_escalation", None) is False:
        errs.add(
            field, "Invalid value", "cannot set allowPrivilegeEscalation false with privileged"
        )
    if sc.run_as_non_root and sc.run_as_user == 0:
        errs.check(f"{field}.runAsNonRoot", True, "runAsUser is 0")
    if getattr(sc, "proc_mount", None) not in (None, "Default"):
        errs.unsupported(f"{field}.procMount", sc.proc_mount)
    if sc.seccomp_profile is not None and sc.seccomp_profile.type not in SECCOMP_PROFILES:
        errs.unsupported(
            f"{field}.seccompProfile.type", sc.seccomp_profile.type, "RuntimeDefault or Unconfined"
        )
    if sc.windows_options is not None:
        errs.unsupported(f"{field}.windowsOptions", detail="pinnace runs linux pods only")
