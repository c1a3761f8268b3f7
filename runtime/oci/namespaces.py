"""``linux.namespaces`` of a pod's containers and of its infra container.

Terms:

pinned namespace
    A pod's network, IPC or UTS namespace kept alive by a bind-mounted nsfs file; the
    sandbox hands their paths over as ``namespace_paths`` (``net``, ``ipc``, ``uts``, and
    ``pid`` when an infra container holds a shared PID namespace).
node namespace
    A kind the pod takes from the node (``NamespaceMode.NODE``): left out of the spec, so
    the container stays in runc's (the host's) namespace. UTS follows the network mode, as
    in Kubernetes (a host-network pod has the node's hostname).
user namespace
    A pod in its own (CRI mode POD) has it pinned as ``namespace_paths["user"]``; it is
    listed first, with the mappings beside it (:func:`user_mappings`), and the pinned
    network, IPC and UTS namespaces are owned by it.
new namespace
    Listed without a path: runc creates it. The mount namespace is always new; the cgroup
    namespace is new on cgroup v2 for unprivileged containers (containerd's rule); a pod
    kind with no pinned path also gets a new one (only a sandbox that pinned nothing, such
    as a test's, has none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.errors import FailedPrecondition
from runtime.model.pods import NamespaceMode, Sandbox

# (OCI type, namespace_paths key) in containerd's order
_POD_KINDS = (("ipc", "ipc"), ("uts", "uts"), ("network", "net"))


def pod_namespaces(
    sandbox: Sandbox,
    namespace_paths: Mapping[str, str],
    *,
    pid: NamespaceMode,
    cgroup_ns: bool,
) -> list[dict[str, Any]]:
    """The namespace list. ``pid`` is the container's PID mode: CONTAINER → new, NODE →
    the host's, POD/TARGET → join ``namespace_paths["pid"]`` (the infra container's, or the
    target container's, resolved by the caller); a missing path raises FailedPrecondition."""
    modes = sandbox.config.security.namespaces
    out: list[dict[str, Any]] = []
    if namespace_paths.get("user"):
        # first: runc joins it before the others, which it then creates owned by it
        out.append({"type": "user", "path": namespace_paths["user"]})
    if pid is NamespaceMode.CONTAINER:
        out.append({"type": "pid"})
    elif pid in (NamespaceMode.POD, NamespaceMode.TARGET):
        path = namespace_paths.get("pid")
        if not path:
            raise FailedPrecondition(
                f"sandbox {sandbox.id}: PID namespace mode {pid.value} needs a PID namespace "
                "to join, and none was given"
            )
        out.append({"type": "pid", "path": path})
    node = {
        "ipc": modes.ipc is NamespaceMode.NODE,
        "uts": modes.network is NamespaceMode.NODE,
        "network": modes.network is NamespaceMode.NODE,
    }
    joined: dict[str, dict[str, Any]] = {}
    for kind, key in _POD_KINDS:
        if not node[kind]:
            path = namespace_paths.get(key)
            joined[kind] = {"type": kind, "path": path} if path else {"type": kind}
    out.extend(joined[k] for k in ("ipc", "uts") if k in joined)
    out.append({"type": "mount"})
    if "network" in joined:
        out.append(joined["network"])
    if cgroup_ns:
        out.append({"type": "cgroup"})
    return out


def owns_uts(namespaces: list[dict[str, Any]]) -> bool:
    """True when the list creates a new UTS namespace (so the spec may set a hostname)."""
    return any(ns["type"] == "uts" and "path" not in ns for ns in namespaces)


def user_mappings(sandbox: Sandbox) -> dict[str, Any]:
    """``linux.uidMappings``/``gidMappings`` of a pod in its own user namespace (runc wants
    them beside a joined user namespace's path); empty for a pod in the node's."""
    userns = sandbox.config.security.namespaces.userns
    if userns is None:
        return {}

    def spec(mappings: Any) -> list[dict[str, int]]:
        return [
            {"containerID": m.container_id, "hostID": m.host_id, "size": m.length} for m in mappings
        ]

    return {"uidMappings": spec(userns.uids), "gidMappings": spec(userns.gids)}
