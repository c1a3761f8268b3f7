"""cgroup mode detection, stats parsing and CPU sampling on sample file texts."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cgroups import (
    CgroupMode,
    CgroupMounts,
    CpuSampler,
    parse_mountinfo,
    read_stats,
    relative_cgroup_path,
    stats_from_v1,
    stats_from_v2,
)
from runtime.errors import InvalidArgument

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

LEGACY_COMOUNTED = """\
25 20 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
26 20 0:23 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
"""

UNIFIED = """\
22 1 0:21 / / rw,relatime - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_hybrid_mode_and_controller_dirs() -> None:
    m = parse_mountinfo(HYBRID)
    assert m.mode is CgroupMode.HYBRID
    assert m.unified == Path("/sys/fs/cgroup/unified")
    assert m.controller_dir("memory", "/pinnace/p/c") == Path("/sys/fs/cgroup/memory/pinnace/p/c")
    assert m.controller_dir("hugetlb", "/pinnace/p/c") is None
    dirs = m.hierarchy_dirs("/pinnace/p/c")
    assert Path("/sys/fs/cgroup/systemd/pinnace/p/c") in dirs
    assert Path("/sys/fs/cgroup/unified/pinnace/p/c") in dirs
    assert len(dirs) == 6


def test_comounted_controllers_share_one_dir() -> None:
    m = parse_mountinfo(LEGACY_COMOUNTED)
    assert m.mode is CgroupMode.LEGACY
    assert m.v1["cpu"] == m.v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert len(m.hierarchy_dirs("/x")) == 2


def test_unified_mode() -> None:
    m = parse_mountinfo(UNIFIED)
    assert m.mode is CgroupMode.UNIFIED
    assert m.controller_dir("memory", "pinnace/c") == Path("/sys/fs/cgroup/pinnace/c")


def test_no_cgroups_and_bad_paths_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        parse_mountinfo("22 1 0:21 / / rw - ext4 /dev/vda rw\n")
    for bad in ("", "/", "/a/../b"):
        with pytest.raises(InvalidArgument):
            relative_cgroup_path(bad)


V1_MEMORY_STAT = """\
cache 10747904
rss 5332992
pgfault 35674
total_cache 331022336
total_rss 50262016
total_pgfault 1890634
total_pgmajfault 1155
total_inactive_file 234303488
"""


def test_v1_stats() -> None:
    s = stats_from_v1(
        {
            "cpuacct.usage": "18645389\n",
            "memory.usage_in_bytes": "400000000\n",
            "memory.stat": V1_MEMORY_STAT,
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            "pids.current": "3\n",
        }
    )
    assert s.cpu_usage_ns == 18645389
    assert s.memory_usage == 400000000
    assert s.memory_working_set == 400000000 - 234303488
    assert s.rss == 50262016
    assert (s.page_faults, s.major_page_faults) == (1890634, 1155)
    assert (s.pids, s.oom_kills) == (3, 2)


def test_v1_working_set_floors_at_zero_and_missing_files_count_zero() -> None:
    s = stats_from_v1(
        {"memory.usage_in_bytes": "100\n", "memory.stat": "total_inactive_file 500\n"}
    )
    assert s.memory_working_set == 0
    assert (s.cpu_usage_ns, s.pids, s.oom_kills) == (0, 0, 0)


def test_v2_stats() -> None:
    s = stats_from_v2(
        {
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
            "memory.current": "8192000\n",
            "memory.stat": "anon 4096000\nfile 2048000\ninactive_file 1024000\n"
            "pgfault 77\npgmajfault 5\n",
            "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
            "pids.current": "max\n",
        }
    )
    assert s.cpu_usage_ns == 1_500_000
    assert s.memory_working_set == 8192000 - 1024000
    assert s.rss == 4096000
    assert (s.page_faults, s.major_page_faults, s.oom_kills, s.pids) == (77, 5, 1, 0)


def test_cpu_sampler() -> None:
    sampler = CpuSampler()
    assert sampler.sample("c", 1_000_000_000, 10_000_000_000) is None
    # half a core over two seconds
    assert sampler.sample("c", 2_000_000_000, 12_000_000_000) == 500_000_000
    # counter went back (cgroup recreated): no rate, but the new baseline is kept
    assert sampler.sample("c", 10, 13_000_000_000) is None
    assert sampler.sample("c", 10 + 2_000_000_000, 14_000_000_000) == 2_000_000_000
    sampler.forget("c")
    assert sampler.sample("c", 5, 15_000_000_000) is None


def test_brief_reads_leave_out_pids_and_oom_kills(tmp_path: Path) -> None:
    mounts = CgroupMounts(
        mode=CgroupMode.HYBRID,
        v1={c: tmp_path / c for c in ("cpuacct", "memory", "pids")},
    )
    for controller, name, text in (
        ("cpuacct", "cpuacct.usage", "123\n"),
        ("memory", "memory.usage_in_bytes", "4096\n"),
        ("memory", "memory.stat", "total_inactive_file 1024\n"),
        ("memory", "memory.oom_control", "oom_kill 2\n"),
        ("pids", "pids.current", "5\n"),
    ):
        d = tmp_path / controller / "pinnace" / "c1"
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    full = read_stats(mounts, "/pinnace/c1")
    brief = read_stats(mounts, "/pinnace/c1", brief=True)
    assert (full.pids, full.oom_kills) == (5, 2)
    assert (brief.pids, brief.oom_kills) == (0, 0)
    assert (
        (brief.cpu_usage_ns, brief.memory_working_set)
        == (123, 3072)
        == (
            full.cpu_usage_ns,
            full.memory_working_set,
        )
    )
