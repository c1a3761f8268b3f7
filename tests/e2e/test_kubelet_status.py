"""Status and RuntimeConfig as the kubelet reads them: each handler's features as its OCI
runtime states them and pinnace honours them, the node-wide features, and the configured
cgroup driver (the recorded kubelet v1.36 calls RuntimeConfig at start for it; containerd 1.6
answered UNIMPLEMENTED)."""

from __future__ import annotations

from typing import Any

from cri.api.runtime.v1 import api_pb2 as pb
from runtime.tasks import features


def test_status_features_and_runtime_config_tell_the_truth(pinnaced: Any) -> None:
    runtime = pinnaced().runtime
    status = runtime.Status(pb.StatusRequest())
    by_name = {h.name: h.features for h in status.runtime_handlers}
    assert set(by_name) == {"", "runc", "crun"}
    # runc 1.1.5 states rro and no idmap; Debian's crun 1.8.1 states nothing
    assert {n: f.recursive_read_only_mounts for n, f in by_name.items()} == {
        "": True,
        "runc": True,
        "crun": False,
    }
    # user namespaces: runc states the user namespace, but the harness's state directory is a
    # mkdtemp (0700), which a pod's root could not reach its rootfs through, so no handler can
    # (tests/e2e/test_userns.py opens it up and sees runc's true)
    assert not any(f.user_namespaces for f in by_name.values())
    assert status.features.supplemental_groups_policy is features.PINNACE_SUPPLEMENTAL_GROUPS_POLICY
    assert runtime.RuntimeConfig(pb.RuntimeConfigRequest()).linux.cgroup_driver == pb.CGROUPFS
