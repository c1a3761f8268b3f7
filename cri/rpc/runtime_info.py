"""Version, Status and RuntimeConfig: what the runtime is and whether it is ready."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from cri.rpc.deps import Deps
from runtime.cdi import CdiRegistry
from runtime.cgroups import CgroupDriver
from runtime.network.template import write_rendered
from runtime.tasks import features

RUNTIME_NAME = "pinnace"
CRI_API_VERSION = "v1"
# The version of the kubelet-facing API this implements (VersionResponse.version).
KUBELET_API_VERSION = "0.1.0"


def version(deps: Deps, request: pb.VersionRequest) -> pb.VersionResponse:
    return pb.VersionResponse(
        version=KUBELET_API_VERSION,
        runtime_name=RUNTIME_NAME,
        runtime_version=deps.version,
        runtime_api_version=CRI_API_VERSION,
    )


def _handler_features(deps: Deps, name: str) -> pb.RuntimeHandlerFeatures:
    """A handler's features as its OCI runtime stated them at start ("" is the default
    handler): recursive read-only mounts where it lists ``rro``; user namespaces where pinnace
    and the runtime both can (:mod:`runtime.tasks.features`)."""
    stated = deps.handler_features.get(name or deps.config.runtime.default_handler)
    rro = stated is not None and stated.recursive_read_only
    userns = stated is not None and stated.user_namespaces
    return pb.RuntimeHandlerFeatures(recursive_read_only_mounts=rro, user_namespaces=userns)


def status(deps: Deps, request: pb.StatusRequest) -> pb.StatusResponse:
    network = deps.network.status()
    conditions = [
        pb.RuntimeCondition(type="RuntimeReady", status=True),
        pb.RuntimeCondition(
            type="NetworkReady",
            status=network.ready,
            reason=network.reason,
            message=network.message,
        ),
    ]
    handlers = [pb.RuntimeHandler(name="", features=_handler_features(deps, ""))]
    handlers += [
        pb.RuntimeHandler(name=name, features=_handler_features(deps, name))
        for name in sorted(deps.config.runtime.handlers)
    ]
    info: dict[str, str] = {}
    if request.verbose:
        info["config"] = json.dumps(asdict(deps.config), default=str, sort_keys=True)
        if deps.cdi is not None:
            info["cdi"] = json.dumps(cdi_info(deps.cdi), sort_keys=True)
        if deps.nri is not None:
            info["nri"] = json.dumps(deps.nri.info(), sort_keys=True)
    return pb.StatusResponse(
        status=pb.RuntimeStatus(conditions=conditions),
        info=info,
        runtime_handlers=handlers,
        features=pb.RuntimeFeatures(
            supplemental_groups_policy=features.PINNACE_SUPPLEMENTAL_GROUPS_POLICY
        ),
    )


def cdi_info(registry: CdiRegistry) -> dict[str, Any]:
    """What ``pinnace cdi ls`` shows: the known devices and the spec files skipped (blocking:
    a few stat(2) calls, done only for a verbose Status)."""
    return {
        "spec_dirs": [str(d) for d in registry.spec_dirs],
        "devices": [
            {"name": d.name, "source": d.source, "conflict": d.conflict} for d in registry.devices()
        ],
        "errors": registry.errors(),
    }


def runtime_config(deps: Deps, request: pb.RuntimeConfigRequest) -> pb.RuntimeConfigResponse:
    driver = (
        pb.SYSTEMD if deps.config.runtime.cgroup_driver == CgroupDriver.SYSTEMD else pb.CGROUPFS
    )
    return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=driver))


async def update_runtime_config(
    deps: Deps, request: pb.UpdateRuntimeConfigRequest
) -> pb.UpdateRuntimeConfigResponse:
    """kubelet hands down the node's pod CIDR; with a template configured, pinnace renders the
    pod network's CNI config from it (the network manager picks the new file up)."""
    cidr = request.runtime_config.network_config.pod_cidr
    template = deps.config.network.conf_template
    if cidr and template is not None:
        await asyncio.to_thread(write_rendered, deps.config.network.cni_conf_dir, template, cidr)
    return pb.UpdateRuntimeConfigResponse()
