"""What the node can apply (hugetlb, unified controllers, RDT) and the policy that drops what
it cannot: the kubelet's requests must start containers on hosts without those controllers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.cgroups.host import HostResources, host_resources, page_size_name
from runtime.cgroups.mounts import CgroupMode, CgroupMounts
from runtime.model.pods import HugepageLimit, Resources
from runtime.oci.resources import (
    applicable_resources,
    ignored_class_annotations,
    resources_spec,
)

_HYBRID_NO_HUGETLB = CgroupMounts(
    mode=CgroupMode.HYBRID,
    v1={"memory": Path("/sys/fs/cgroup/memory"), "blkio": Path("/sys/fs/cgroup/blkio")},
    unified=Path("/sys/fs/cgroup/unified"),
)
_UNIFIED = CgroupMounts(mode=CgroupMode.UNIFIED, unified=Path("/sys/fs/cgroup"))

# What kubelet v1.36 sent for a Guaranteed pod (../shared/kubelet-cri/guaranteed-pod.jsonl).
_KUBELET = Resources(
    cpu_period=100000,
    cpu_quota=20000,
    cpu_shares=204,
    memory_limit_in_bytes=64 << 20,
    memory_swap_limit_in_bytes=64 << 20,
    oom_score_adj=-997,
    hugepage_limits=(HugepageLimit("2MB", 0), HugepageLimit("1GB", 0)),
)


@pytest.mark.parametrize(
    ("kib", "name"), [(2048, "2MB"), (1048576, "1GB"), (64, "64KB"), (16384, "16MB")]
)
def test_page_size_names_as_the_kubelet_writes_them(kib: int, name: str) -> None:
    assert page_size_name(kib) == name


def test_hybrid_host_with_hugetlb_only_in_unified_has_no_usable_controller() -> None:
    host = host_resources(
        _HYBRID_NO_HUGETLB,
        root_controllers=["hugetlb"],  # ignored: runc in hybrid mode uses v1 only
        hugepage_dirs=["hugepages-2048kB", "hugepages-1048576kB", "junk"],
    )
    assert host == HostResources(
        hugetlb=False,
        hugepage_sizes=frozenset({"2MB", "1GB"}),
        unified_controllers=None,
        rdt=False,
        blockio=True,
    )


def test_v1_hugetlb_hierarchy_is_usable() -> None:
    mounts = CgroupMounts(mode=CgroupMode.LEGACY, v1={"hugetlb": Path("/sys/fs/cgroup/hugetlb")})
    assert host_resources(mounts).hugetlb is True


def test_unified_host_reads_cgroup_controllers() -> None:
    with_ = host_resources(_UNIFIED, root_controllers=["cpu", "memory", "hugetlb", "io"])
    without = host_resources(_UNIFIED, root_controllers=["cpu", "memory"], resctrl_mounted=True)
    assert (
        with_.hugetlb
        and with_.blockio
        and with_.unified_controllers
        == {
            "cpu",
            "memory",
            "hugetlb",
            "io",
        }
    )
    assert not without.hugetlb and not without.blockio and without.rdt


def test_kubelet_hugepage_limits_dropped_without_controller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = HostResources(hugetlb=False)
    with caplog.at_level(logging.DEBUG, logger="runtime.oci.resources"):
        applied = applicable_resources(
            _KUBELET, host, tolerate_missing_hugetlb=True, host_oom_score_adj=0
        )
    assert applied is not None
    assert applied.hugepage_limits == ()
    assert "hugepageLimits" not in resources_spec(applied, cgroup_v2=False)
    assert [r.getMessage() for r in caplog.records if "hugepage" in r.getMessage()] == [
        "dropping hugepage limits 2MB=0, 1GB=0: no hugetlb controller the OCI runtime can use"
    ]
    # the rest is applied as asked
    assert (applied.cpu_quota, applied.cpu_shares, applied.memory_limit_in_bytes) == (
        20000,
        204,
        64 << 20,
    )


def test_hugepage_limits_kept_when_not_tolerated_or_controller_exists() -> None:
    kept = applicable_resources(
        _KUBELET, HostResources(), tolerate_missing_hugetlb=False, host_oom_score_adj=-997
    )
    usable = applicable_resources(
        _KUBELET, HostResources(hugetlb=True), tolerate_missing_hugetlb=True, host_oom_score_adj=0
    )
    assert kept is not None and kept.hugepage_limits == _KUBELET.hugepage_limits
    assert usable is not None and usable.hugepage_limits == _KUBELET.hugepage_limits


def test_oom_score_adj_reports_the_value_in_effect() -> None:
    lowered = applicable_resources(
        _KUBELET, HostResources(), tolerate_missing_hugetlb=True, host_oom_score_adj=0
    )
    allowed = applicable_resources(
        Resources(oom_score_adj=1000),
        HostResources(),
        tolerate_missing_hugetlb=True,
        host_oom_score_adj=0,
    )
    assert lowered is not None and lowered.oom_score_adj == 0  # -997 needs CAP_SYS_RESOURCE
    assert allowed is not None and allowed.oom_score_adj == 1000


def test_unified_keys_of_missing_controllers_dropped() -> None:
    wanted = Resources(unified={"memory.high": "1000000", "hugetlb.2MB.max": "0", "cgroup.x": "1"})
    v2 = HostResources(unified_controllers=frozenset({"memory", "cpu"}))
    applied = applicable_resources(wanted, v2, tolerate_missing_hugetlb=True, host_oom_score_adj=0)
    on_v1 = applicable_resources(
        wanted, HostResources(), tolerate_missing_hugetlb=True, host_oom_score_adj=0
    )
    assert applied is not None and dict(applied.unified) == {
        "memory.high": "1000000",
        "cgroup.x": "1",
    }
    assert on_v1 is not None and dict(on_v1.unified) == {}


def test_nothing_to_drop_returns_the_request_itself() -> None:
    wanted = Resources(cpu_shares=2, oom_score_adj=5)
    same = applicable_resources(
        wanted, HostResources(), tolerate_missing_hugetlb=True, host_oom_score_adj=0
    )
    assert same is wanted
    assert (
        applicable_resources(
            None, HostResources(), tolerate_missing_hugetlb=True, host_oom_score_adj=0
        )
        is None
    )


def test_class_annotations_are_named() -> None:
    assert ignored_class_annotations(
        {
            "io.kubernetes.cri.rdt-class": "gold",
            "blockio.resources.beta.kubernetes.io/pod": "slow",
            "io.kubernetes.container.hash": "x",
        }
    ) == ["blockio.resources.beta.kubernetes.io/pod", "io.kubernetes.cri.rdt-class"]
