"""Kubernetes Pod manifests → CRI configs, for ``pinnace play``. Pure: no I/O, no RPCs.

Terms:
  manifest   one YAML document of ``apiVersion: v1, kind: Pod``, parsed into the ``kubernetes``
             package's ``V1Pod`` model. Unknown fields are refused, as the API server does under
             strict field validation (kubectl's default).
  plan       what running the manifest takes (:class:`PodPlan`): the ``PodSandboxConfig``, one
             ``ContainerConfig`` per init and regular container, the host directories to create
             first (emptyDir volumes, ``DirectoryOrCreate`` hostPaths, subPaths) and the hostPaths
             that must already exist.
  play root  the directory under which emptyDir volumes live: ``<play root>/<pod uid>/<volume>``.

The translation follows what kubelet sends for the same pod (labels ``io.kubernetes.pod.*``, log
paths ``<log root>/<ns>_<name>_<uid>/<container>/0.log``, cpu shares and quota from millicores,
namespace modes, ``$(VAR)`` expansion). Validation covers the subset pinnace runs, in the API
server's words (``spec.containers[0].name: Invalid value: ...``); fields that would change what
runs but cannot be honoured here (Secret/ConfigMap volumes, ``valueFrom``, lifecycle hooks,
sidecars, host aliases, user namespaces) are refused by name. Fields that only matter to a
scheduler or to a controlling kubelet (probes, affinity, tolerations, restartPolicy, service
accounts, imagePullSecrets) are accepted and ignored: play runs each container once.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

import yaml

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from kubernetes.client import V1Container, V1Pod, V1SecurityContext

DEFAULT_LOG_ROOT = "/var/log/pods"
DEFAULT_PLAY_ROOT = "/var/lib/pinnace-play"
DEFAULT_NAMESPACE = "default"
#: Annotations play adds to the sandbox so ``play --down`` can clean up what it created.
LOG_DIRECTORY_ANNOTATION = "io.pinnace.play.log-directory"
VOLUME_DIRECTORY_ANNOTATION = "io.pinnace.play.volume-directory"
GRACE_PERIOD_ANNOTATION = "io.kubernetes.pod.terminationGracePeriod"
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"

# kubelet's constants (pkg/kubelet/cm/helpers_linux.go)
CPU_PERIOD = 100_000
MIN_QUOTA = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144
MAX_DNS_SERVERS = 3
MAX_DNS_SEARCHES = 32

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(rf"^{_LABEL}$")
_DNS_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")
_SUFFIX = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{
        s: Decimal(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
    "": Decimal(1),
}
_SUPPORTED_VOLUMES = ("empty_dir", "host_path")
_HOST_PATH_TYPES = (
    "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
    "BlockDevice",
)  # fmt: skip
_PROPAGATION = {
    None: pb.PROPAGATION_PRIVATE,
    "None": pb.PROPAGATION_PRIVATE,
    "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
}
_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}
_PROFILES = {
    "RuntimeDefault": pb.SecurityProfile.RuntimeDefault,
    "Unconfined": pb.SecurityProfile.Unconfined,
}


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


# -- loading -----------------------------------------------------------------------------
def load_pod(text: str) -> V1Pod:
    """Parse one YAML document holding a Pod into ``V1Pod``, refusing unknown fields and
    malformed values. Raises InvalidArgument naming the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"not valid YAML: {exc}") from None
    return pod_from_dict(data)


def pod_from_dict(data: Any) -> V1Pod:
    """A ``V1Pod`` from the manifest's dict (camelCase keys, as in YAML)."""
    if not isinstance(data, dict):
        raise InvalidArgument("a Pod manifest must be a YAML mapping")
    if data.get("apiVersion") != "v1" or data.get("kind") != "Pod":
        raise InvalidArgument(
            f"expected apiVersion: v1, kind: Pod; got apiVersion: {data.get('apiVersion')!r},"
            f" kind: {data.get('kind')!r}"
        )
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise InvalidArgument("spec: Required value")
    # Required fields the model would reject without saying where they are.
    errs = []
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            if not isinstance(container, dict) or not isinstance(container.get("name"), str):
                errs.append(f"spec.{key}[{i}].name: Required value")
    if errs:
        raise InvalidArgument(_invalid(_name_of(data), errs))
    data = _quantities_as_strings(data)
    from kubernetes.client import V1Pod  # the models take ~0.5 s to import; only play needs them
    from pydantic import ValidationError

    try:
        # The models' public from_dict is the deserializer; no API server or private
        # ApiClient method is involved.
        pod = V1Pod.from_dict(data)
    except ValidationError as exc:
        errs = [
            f"{exc.title}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        ]
        raise InvalidArgument(_invalid(_name_of(data), errs)) from None
    assert pod is not None
    unknown = _unknown_fields(data, pod, "")
    if unknown:
        raise InvalidArgument(
            "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
        )
    return pod


def _quantities_as_strings(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the manifest with YAML numbers given as quantities (``cpu: 1``, ``memory:
    134217728``, ``sizeLimit: 1e9``) turned into strings: the API server takes both, the
    models only strings."""
    data = copy.deepcopy(data)
    spec = data["spec"]

    def fix(mapping: Any, *keys: str) -> None:
        for key in keys:
            values = mapping.get(key) if isinstance(mapping, dict) else None
            if isinstance(values, dict):
                for name, value in values.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        values[name] = str(value)

    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            fix(container.get("resources"), "limits", "requests")
    for volume in spec.get("volumes") or []:
        fix(volume, "emptyDir")
    fix(spec, "overhead")
    return data


def _name_of(data: dict[str, Any]) -> str:
    meta = data.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def _unknown_fields(data: Any, model: Any, path: str) -> list[str]:
    """Keys of ``data`` the model does not define, as dotted paths; ``from_dict`` drops them
    silently (and also accepts snake_case names, which the API server does not)."""
    attribute_map = getattr(type(model), "attribute_map", None)
    if not isinstance(data, dict) or attribute_map is None:
        return []
    known = {json_key: attr for attr, json_key in attribute_map.items()}
    out: list[str] = []
    for key, value in data.items():
        attr = known.get(key)
        if attr is None:
            out.append(f"{path}{key}")
            continue
        child = getattr(model, attr, None)
        if isinstance(value, dict):
            out.extend(_unknown_fields(value, child, f"{path}{key}."))
        elif isinstance(value, list) and isinstance(child, list):
            for i, (item, sub) in enumerate(zip(value, child, strict=False)):
                out.extend(_unknown_fields(item, sub, f"{path}{key}[{i}]."))
    return out


def _invalid(name: str, errs: Sequence[str]) -> str:
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


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``0.5``, ``64Mi``, ``1e3``, ``2G``) as a number.
    Raises InvalidArgument for anything else, negative values included."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise InvalidArgument(f"quantities must match the regular expression {_QUANTITY.pattern}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise InvalidArgument(f"{text!r} is not a number") from None
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        value *= Decimal(10) ** int(suffix[1:])
    else:
        value *= _SUFFIX[suffix]
    if value < 0:
        raise InvalidArgument("must be greater than or equal to 0")
    return value


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def milli_cpu(quantity: str | int | float) -> int:
    """Millicores of a cpu quantity, rounded up as Kubernetes' ``MilliValue`` does."""
    return _ceil(parse_quantity(quantity) * 1000)


def cpu_shares(milli: int) -> int:
    """kubelet's ``MilliCPUToShares``: 1024 shares per core, clamped to [2, 262144]."""
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * 1024 // 1000))


def cpu_quota(milli: int, period: int = CPU_PERIOD) -> int:
    """kubelet's ``MilliCPUToQuota``: the share of ``period`` the limit allows, at least 1 ms
    (0 means no limit)."""
    if milli == 0:
        return 0
    return max(MIN_QUOTA, milli * period // 1000)


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
        raise InvalidArgument(_invalid(name, errs.items))


def _validate_spec(spec: Any, errs: _Errors) -> None:
    for attr, key in _REFUSED_SPEC.items():
        if getattr(spec, attr, None):
            errs.unsupported(f"spec.{key}", detail=_NOT_PLAYABLE)
    if spec.host_users is False:
        errs.unsupported("spec.hostUsers", False, "user namespaces are not supported")
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
        if vm.mount_propagation not in _PROPAGATION:
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
    if protocol not in _PROTOCOLS:
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
    if sc.seccomp_profile is not None and sc.seccomp_profile.type not in _PROFILES:
        errs.unsupported(
            f"{field}.seccompProfile.type", sc.seccomp_profile.type, "RuntimeDefault or Unconfined"
        )
    if sc.windows_options is not None:
        errs.unsupported(f"{field}.windowsOptions", detail="pinnace runs linux pods only")


# -- translation -------------------------------------------------------------------------
def plan_pod(
    pod: V1Pod,
    *,
    uid: str,
    log_root: str = DEFAULT_LOG_ROOT,
    play_root: str = DEFAULT_PLAY_ROOT,
    host_resolv_conf: str | None = None,
) -> PodPlan:
    """Validate ``pod`` and translate it into CRI configs. ``uid`` becomes the pod's uid
    (``metadata.uid`` if the manifest has one wins); ``host_resolv_conf`` is the node's resolv.conf
    text, which every dnsPolicy but ``None`` starts from (play has no cluster DNS, so
    ``ClusterFirst`` falls back to ``Default`` as kubelet does without one)."""
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
                volume_directory=volume_directory, directories=directories,
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
                        protocol=_PROTOCOLS[port.protocol or "TCP"],
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
        target.seccomp.CopyFrom(pb.SecurityProfile(profile_type=_PROFILES[sc.seccomp_profile.type]))
    apparmor = getattr(sc, "app_armor_profile", None)
    if apparmor is not None:
        kind = pb.SecurityProfile.ProfileType.Value(apparmor.type)
        target.apparmor.CopyFrom(
            pb.SecurityProfile(profile_type=kind, localhost_ref=apparmor.localhost_profile or "")
        )


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
        mounts=_mounts(c, volumes, volume_directory, directories),
        labels={**identity, CONTAINER_NAME_LABEL: c.name},
        annotations=annotations,
        log_path=f"{c.name}/0.log",
        stdin=bool(c.stdin),
        stdin_once=bool(c.stdin_once),
        tty=bool(c.tty),
        linux=pb.LinuxContainerConfig(resources=_resources(c), security_context=security),
    )


def _mounts(
    c: V1Container, volumes: Mapping[str, Any], volume_directory: str, directories: list[str]
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
                propagation=_PROPAGATION[vm.mount_propagation],
                recursive_read_only=vm.recursive_read_only == "Enabled",
            )
        )
    return out


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
        out.memory_limit_in_bytes = _ceil(parse_quantity(limits["memory"]))
    for key, value in limits.items():
        if key.startswith("hugepages-"):
            size = _ceil(parse_quantity(key.removeprefix("hugepages-")))
            out.hugepage_limits.append(
                pb.HugepageLimit(page_size=_page_size(size), limit=_ceil(parse_quantity(value)))
            )
    return out


def _page_size(size: int) -> str:
    """kubelet's names for huge page sizes: 2097152 → ``2MB``, 1073741824 → ``1GB``."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
