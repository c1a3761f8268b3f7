"""Resource mapping, unified on v1 and the oom_score_adj rule."""

from __future__ import annotations

import logging

import pytest

from runtime.model.pods import HugepageLimit, Resources
from runtime.oci import resources


def test_none_and_empty() -> None:
    assert resources.resources_spec(None, cgroup_v2=True) == {}
    assert resources.resources_spec(Resources(), cgroup_v2=True) == {}


def test_full_mapping_v2() -> None:
    r = Resources(
        cpu_period=100000,
        cpu_quota=50000,
        cpu_shares=512,
        memory_limit_in_bytes=64 << 20,
        memory_swap_limit_in_bytes=128 << 20,
        cpuset_cpus="0-1",
        cpuset_mems="0",
        hugepage_limits=(HugepageLimit("2MB", 4 << 20),),
        unified={"memory.high": "50000000"},
    )
    assert resources.resources_spec(r, cgroup_v2=True) == {
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "memory": {"limit": 64 << 20, "swap": 128 << 20},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
        "unified": {"memory.high": "50000000"},
    }


def test_swap_only_when_set() -> None:
    got = resources.resources_spec(Resources(memory_limit_in_bytes=1 << 20), cgroup_v2=False)
    assert got == {"memory": {"limit": 1 << 20}}


def test_unified_dropped_on_v1(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="runtime.oci.resources")
    got = resources.resources_spec(
        Resources(cpu_shares=2, unified={"memory.high": "1"}), cgroup_v2=False
    )
    assert got == {"cpu": {"shares": 2}}
    assert "unified" in caplog.text


@pytest.mark.parametrize(
    ("wanted", "host", "expected"),
    [(None, 0, None), (-998, 0, None), (-1, 0, None), (0, 0, 0), (1000, 0, 1000), (-5, -10, -5)],
)
def test_oom_score_adj(wanted: int | None, host: int, expected: int | None) -> None:
    assert resources.oom_score_adj(wanted, host_oom_score_adj=host) == expected
