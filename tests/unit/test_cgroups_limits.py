"""Pod cgroup limits for the in-place pod resize: which files get which values, v1 and v2."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cgroups.limits import apply_limits, limit_writes, pod_limits, shares_to_weight
from runtime.cgroups.mounts import CgroupMode, CgroupMounts
from runtime.errors import FailedPrecondition
from runtime.model.pods import Resources


def _files(resources: Resources, mode: CgroupMode) -> list[tuple[str, str]]:
    return [(w.file, w.value) for w in limit_writes(resources, mode)]


def test_v1_files() -> None:
    r = Resources(
        cpu_shares=512, cpu_quota=50_000, cpu_period=100_000, memory_limit_in_bytes=1 << 28
    )
    assert _files(r, CgroupMode.HYBRID) == [
        ("cpu.shares", "512"),
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "50000"),
        ("memory.limit_in_bytes", str(1 << 28)),
    ]


def test_v1_swap_is_written_around_the_memory_limit() -> None:
    r = Resources(memory_limit_in_bytes=100, memory_swap_limit_in_bytes=300)
    assert [f for f, _ in _files(r, CgroupMode.LEGACY)] == [
        "memory.memsw.limit_in_bytes",
        "memory.limit_in_bytes",
        "memory.memsw.limit_in_bytes",
    ]


def test_v2_files_convert_shares_and_swap() -> None:
    r = Resources(
        cpu_shares=1024,
        cpu_quota=20_000,
        cpu_period=50_000,
        memory_limit_in_bytes=1000,
        memory_swap_limit_in_bytes=1500,
    )
    assert _files(r, CgroupMode.UNIFIED) == [
        ("cpu.weight", "39"),
        ("cpu.max", "20000 50000"),
        ("memory.max", "1000"),
        ("memory.swap.max", "500"),
    ]
    assert _files(Resources(cpu_quota=-1), CgroupMode.UNIFIED) == [("cpu.max", "max 100000")]


def test_shares_to_weight_bounds() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(0) == 1


def test_unset_figures_write_nothing() -> None:
    assert limit_writes(Resources(), CgroupMode.HYBRID) == []
    assert limit_writes(Resources(), CgroupMode.UNIFIED) == []


def test_pod_limits_add_the_overhead_to_set_figures() -> None:
    resources = Resources(cpu_shares=200, memory_limit_in_bytes=1000)
    overhead = Resources(cpu_shares=10, memory_limit_in_bytes=100, cpu_quota=5000)
    limits = pod_limits(resources, overhead)
    assert limits is not None
    assert (limits.cpu_shares, limits.memory_limit_in_bytes, limits.cpu_quota) == (210, 1100, 0)
    assert pod_limits(None, overhead) is None
    assert pod_limits(resources, None) == resources


def test_apply_writes_into_each_controllers_directory(tmp_path: Path) -> None:
    mounts = CgroupMounts(
        mode=CgroupMode.HYBRID, v1={"cpu": tmp_path / "cpu", "memory": tmp_path / "memory"}
    )
    written = apply_limits(
        mounts, "/pinnace/pod1", Resources(cpu_shares=300, memory_limit_in_bytes=4096)
    )
    assert (tmp_path / "cpu/pinnace/pod1/cpu.shares").read_text() == "300"
    assert (tmp_path / "memory/pinnace/pod1/memory.limit_in_bytes").read_text() == "4096"
    assert len(written) == 2


def test_apply_without_the_controller_says_which(tmp_path: Path) -> None:
    mounts = CgroupMounts(mode=CgroupMode.HYBRID, v1={"cpu": tmp_path / "cpu"})
    with pytest.raises(FailedPrecondition, match="memory controller is not mounted"):
        apply_limits(mounts, "/pinnace/pod1", Resources(memory_limit_in_bytes=4096))
