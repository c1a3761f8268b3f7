"""The OCI runtime spec (``config.json``) of a pod's containers and of its infra container.

Pure apart from reading: the image's ``/etc/passwd`` and ``/etc/group`` (inside the rootfs,
never following a link out of it), host device nodes (stat), this process's capabilities and
a localhost seccomp profile. Nothing is written. The rules are Kubernetes' and containerd's;
each module of this package documents its own (``process``, ``user``, ``mounts``,
``devices``, ``namespaces``, ``resources``, ``caps``, ``seccomp``).

Terms:

infra container
    The process that holds a pod's shared PID namespace, run only when the pod shares one
    (pinned namespaces hold everything else). Its spec is :func:`build_infra_spec`.
AppArmor and SELinux
    See :mod:`runtime.oci.lsm`: a Localhost AppArmor profile is applied where the host has
    AppArmor and refused (FailedPrecondition) where it has not; RuntimeDefault and Unconfined
    apply none; SELinux labels are not applied.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument
from runtime.model.pods import ContainerConfig, NamespaceMode, Sandbox, SupplementalGroupsPolicy
from runtime.oci import caps, defaults, devices, lsm, namespaces, process, resources, seccomp, user
from runtime.oci.mounts import SandboxFiles, build_mounts, sandbox_mounts
from runtime.ocispec import ImageConfig

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
SANDBOX_LOG_DIRECTORY = "io.kubernetes.cri.sandbox-log-directory"
SANDBOX_IMAGE_NAME = "io.kubernetes.cri.podsandbox.image-name"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"

# containerd's infra container values: the lowest CPU weight and a score just above the
# kubelet's own, so the infra container is the last a pod loses under memory pressure.
INFRA_CPU_SHARES = 2
INFRA_OOM_SCORE_ADJ = -998

__all__ = [
    "SandboxFiles",
    "build_container_spec",
    "build_infra_spec",
]


def build_container_spec(
    *,
    container: ContainerConfig,
    sandbox: Sandbox,
    image: ImageConfig,
    rootfs: Path,
    cgroups_path: str,
    sandbox_files: SandboxFiles,
    namespace_paths: Mapping[str, str],
    host_oom_score_adj: int,
    cgroup_v2: bool,
    all_capabilities: Sequence[str] | None = None,
    image_name: str = "",
    recursive_read_only: bool = False,
    security_modules: lsm.HostSecurityModules | None = None,
) -> dict[str, Any]:
    """The spec of one of the pod's containers. ``rootfs`` is the container's mounted root
    filesystem (named absolutely in the spec); ``namespace_paths`` the sandbox's pinned
    namespaces (plus ``pid`` when the container joins a shared or target PID namespace);
    ``host_oom_score_adj`` the daemon's own score; ``all_capabilities`` what "ALL" and
    privileged mean (default: this process's effective set); ``recursive_read_only`` whether
    the OCI runtime supports ``rro`` mounts; ``security_modules`` the host's (default: none).

    Raises InvalidArgument for a bad request (no command, unknown user, relative mount,
    missing device, unknown capability or signal), FailedPrecondition for a PID namespace
    mode without a namespace to join."""
    sec = container.security
    # the name the user gave (see runtime.images.naming), not the image id the kubelet sends
    image_ref = image_name or container.image
    argv = process.process_args(image, command=container.command, args=container.args)
    hostname = _hostname(sandbox)
    env = process.container_env(image, container.envs, hostname=hostname)
    cwd = process.working_dir(container.working_dir, image)
    userstr = user.user_string(
        image.user,
        run_as_user=sec.run_as_user,
        run_as_group=sec.run_as_group,
        run_as_username=sec.run_as_username,
    )
    who = user.resolve_user(
        rootfs,
        userstr,
        supplemental_groups=sec.supplemental_groups,
        strict_groups=sec.supplemental_groups_policy is SupplementalGroupsPolicy.STRICT,
        image=image_ref,
    )

    everything = (
        list(all_capabilities) if all_capabilities is not None else caps.current_capabilities()
    )
    if sec.privileged:
        capset = list(everything)
    else:
        capset = caps.apply_add_drop(
            defaults.DEFAULT_CAPABILITIES,
            add=sec.capabilities.add,
            drop=sec.capabilities.drop,
            all_capabilities=everything,
        )

    mounts, propagation = build_mounts(
        container.mounts,
        sandbox_mounts(sandbox_files, readonly_rootfs=sec.readonly_rootfs),
        privileged=sec.privileged,
        recursive_read_only=recursive_read_only,
    )

    device_entries, device_rules = devices.config_devices(container.devices)
    if sec.privileged:
        taken = {d["path"] for d in device_entries}
        device_entries += [d for d in devices.host_devices() if d["path"] not in taken]
        device_rules = defaults.allow_all_devices_rules()
    else:
        device_rules = defaults.default_device_rules() + device_rules

    ns = namespaces.pod_namespaces(
        sandbox,
        namespace_paths,
        pid=sec.namespaces.pid,
        cgroup_ns=cgroup_v2 and not sec.privileged,
    )

    proc: dict[str, Any] = {
        "terminal": container.tty,
        "user": who.to_spec(),
        "args": argv,
        "env": env,
        "cwd": cwd,
        "capabilities": _capabilities(capset),
        "noNewPrivileges": sec.no_new_privs,
    }
    apparmor = lsm.apparmor_profile(
        sec.apparmor,
        host=security_modules or lsm.HostSecurityModules(),
        privileged=sec.privileged,
        what=f"container {container.name!r}",
    )
    if apparmor:
        proc["apparmorProfile"] = apparmor
    wanted_adj = container.resources.oom_score_adj if container.resources else None
    adj = resources.oom_score_adj(wanted_adj, host_oom_score_adj=host_oom_score_adj)
    if adj is not None:
        proc["oomScoreAdj"] = adj

    linux_resources = resources.resources_spec(container.resources, cgroup_v2=cgroup_v2)
    linux_resources["devices"] = device_rules
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path,
        "resources": linux_resources,
        "namespaces": ns,
        **namespaces.user_mappings(sandbox),
    }
    if device_entries:
        linux["devices"] = device_entries
    if not sec.privileged:
        linux["maskedPaths"] = list(
            defaults.MASKED_PATHS if sec.masked_paths is None else sec.masked_paths
        )
        linux["readonlyPaths"] = list(
            defaults.READONLY_PATHS if sec.readonly_paths is None else sec.readonly_paths
        )
    if propagation:
        linux["rootfsPropagation"] = propagation
    profile = seccomp.seccomp_spec(sec.seccomp, privileged=sec.privileged, capabilities=capset)
    if profile is not None:
        linux["seccomp"] = profile

    annotations = dict(container.annotations)
    annotations.update(_pod_annotations(sandbox))
    annotations.update(
        {
            CONTAINER_TYPE: "container",
            CONTAINER_NAME: container.name,
            IMAGE_NAME: image_ref,
        }
    )

    spec: dict[str, Any] = {
        "ociVersion": defaults.OCI_VERSION,
        "process": proc,
        "root": {"path": str(rootfs), "readonly": sec.readonly_rootfs},
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    }
    if hostname and namespaces.owns_uts(ns):
        spec["hostname"] = hostname
    return spec


def build_infra_spec(
    *,
    sandbox: Sandbox,
    image: ImageConfig,
    rootfs: Path,
    cgroups_path: str,
    namespace_paths: Mapping[str, str],
    host_oom_score_adj: int,
    cgroup_v2: bool,
    image_name: str = "",
    security_modules: lsm.HostSecurityModules | None = None,
) -> dict[str, Any]:
    """The spec of a pod's infra container: it joins the pinned network, IPC and UTS
    namespaces, creates the pod's PID namespace and runs the image's ENTRYPOINT + CMD on a
    read-only root with no capabilities and no new privileges. ``image_name`` is recorded in
    the annotations. InvalidArgument when the image has nothing to run."""
    if not image.entrypoint and not image.cmd:
        raise InvalidArgument(
            f"infra image {image_name or '(unnamed)'} has no entrypoint or cmd to run"
        )
    sec = sandbox.config.security
    userstr = user.user_string(
        image.user, run_as_user=sec.run_as_user, run_as_group=sec.run_as_group
    )
    who = user.resolve_user(
        rootfs,
        userstr,
        supplemental_groups=sec.supplemental_groups,
        strict_groups=sec.supplemental_groups_policy is SupplementalGroupsPolicy.STRICT,
        image=image_name,
    )
    ns = namespaces.pod_namespaces(
        sandbox, namespace_paths, pid=NamespaceMode.CONTAINER, cgroup_ns=cgroup_v2
    )
    mounts, _ = build_mounts((), ())
    proc: dict[str, Any] = {
        "terminal": False,
        "user": who.to_spec(),
        "args": [*image.entrypoint, *image.cmd],
        "env": process.merge_env([f"PATH={defaults.DEFAULT_PATH}"], image.env),
        "cwd": image.working_dir or "/",
        "capabilities": _capabilities([]),
        "noNewPrivileges": True,
    }
    apparmor = lsm.apparmor_profile(
        sec.apparmor,
        host=security_modules or lsm.HostSecurityModules(),
        privileged=sec.privileged,
        what="infra container",
    )
    if apparmor:
        proc["apparmorProfile"] = apparmor
    adj = resources.oom_score_adj(INFRA_OOM_SCORE_ADJ, host_oom_score_adj=host_oom_score_adj)
    if adj is not None:
        proc["oomScoreAdj"] = adj
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path,
        "resources": {
            "cpu": {"shares": INFRA_CPU_SHARES},
            "devices": defaults.default_device_rules(),
        },
        "namespaces": ns,
        **namespaces.user_mappings(sandbox),
        "maskedPaths": list(defaults.MASKED_PATHS),
        "readonlyPaths": list(defaults.READONLY_PATHS),
    }
    profile = seccomp.seccomp_spec(sec.seccomp, privileged=sec.privileged, capabilities=())
    if profile is not None:
        linux["seccomp"] = profile
    annotations = dict(sandbox.config.annotations)
    annotations.update(_pod_annotations(sandbox))
    annotations.update(
        {
            CONTAINER_TYPE: "sandbox",
            SANDBOX_LOG_DIRECTORY: sandbox.config.log_directory,
            SANDBOX_IMAGE_NAME: image_name,
        }
    )
    spec: dict[str, Any] = {
        "ociVersion": defaults.OCI_VERSION,
        "process": proc,
        "root": {"path": str(rootfs), "readonly": True},
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    }
    hostname = _hostname(sandbox)
    if hostname and namespaces.owns_uts(ns):
        spec["hostname"] = hostname
    return spec


def _capabilities(capset: Sequence[str]) -> dict[str, list[str]]:
    # Not inheritable, not ambient: Kubernetes leaves non-root + capabilities undefined and
    # containerd keeps Docker's behaviour (kubernetes/kubernetes#56374).
    return {k: list(capset) for k in ("bounding", "effective", "permitted")}


def _pod_annotations(sandbox: Sandbox) -> dict[str, str]:
    meta = sandbox.config.metadata
    return {
        SANDBOX_ID: sandbox.id,
        SANDBOX_NAME: meta.name,
        SANDBOX_NAMESPACE: meta.namespace,
        SANDBOX_UID: meta.uid,
    }


def _hostname(sandbox: Sandbox) -> str:
    """The pod's hostname, else the node's (as a new UTS namespace inherits it)."""
    return sandbox.hostname or sandbox.config.hostname or socket.gethostname()
