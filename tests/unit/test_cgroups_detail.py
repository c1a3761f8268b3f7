"""cgroup v1 and v2 files → the metrics' figures; pressure, block I/O, procs, uevent."""

from __future__ import annotations

from pathlib import Path

from runtime.cgroups.detail import (
    BlockIO,
    detail_from_v1,
    detail_from_v2,
    parse_blkio_v1,
    parse_io_stat_v2,
    parse_pressure,
    weight_to_shares,
)
from runtime.cgroups.limits import shares_to_weight
from runtime.cgroups.stats import CgroupStats
from runtime.stats.procs import block_device_name, open_files, parse_uevent_devname

STATS = CgroupStats(0, 0, 0, 0, 0, 0, pids=7, oom_kills=0)

V1 = {
    "cpu.stat": "nr_periods 10\nnr_throttled 3\nthrottled_time 2500000000\n",
    "cpuacct.usage_user": "4000000000\n",
    "cpuacct.usage_sys": "1000000000\n",
    "memory.stat": "cache 1\ntotal_cache 100\ntotal_mapped_file 20\ntotal_swap 5\n"
    "total_active_anon 30\ntotal_inactive_anon 40\ntotal_active_file 50\ntotal_inactive_file 60\n",
    "memory.kmem.usage_in_bytes": "4096\n",
    "memory.max_usage_in_bytes": "999\n",
    "memory.failcnt": "2\n",
    "memory.limit_in_bytes": "9223372036854771712\n",
    "memory.soft_limit_in_bytes": "67108864\n",
    "memory.memsw.limit_in_bytes": "9223372036854771712\n",
    "cpu.shares": "512\n",
    "cpu.cfs_period_us": "100000\n",
    "cpu.cfs_quota_us": "-1\n",
    "pids.max": "max\n",
    "cgroup.procs": "12\n34\n",
    "blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\n"
    "Total 12288\n",
    "blkio.throttle.io_serviced": "8:0 Read 1\n8:0 Write 2\n",
    "cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=500000\n",
}


def test_v1_figures() -> None:
    d = detail_from_v1(V1, STATS)
    assert (d.cpu_user_ns, d.cpu_system_ns) == (4_000_000_000, 1_000_000_000)
    assert (d.cfs_periods, d.cfs_throttled_periods, d.cfs_throttled_ns) == (10, 3, 2_500_000_000)
    assert (d.memory_cache, d.memory_mapped_file, d.memory_swap) == (100, 20, 5)
    assert (d.active_anon, d.inactive_anon, d.active_file, d.inactive_file) == (30, 40, 50, 60)
    assert (d.memory_kernel, d.memory_max_usage, d.memory_failcnt) == (4096, 999, 2)
    assert d.memory_limit == 0 and d.memory_swap_limit == 0  # unlimited
    assert d.memory_reservation == 64 << 20
    assert (d.cpu_shares, d.cpu_period, d.cpu_quota) == (512, 100000, 0)
    assert (d.threads, d.threads_max, d.processes, d.pids) == (7, 0, 2, (12, 34))
    assert d.block_io == (BlockIO(8, 0, read_bytes=4096, write_bytes=8192, reads=1, writes=2),)
    assert d.cpu_pressure is not None and d.cpu_pressure.some_ns == 1_500_000_000
    assert d.memory_pressure is None


def test_v1_cpu_ticks_when_the_ns_files_are_missing() -> None:
    d = detail_from_v1({"cpuacct.stat": "user 250\nsystem 50\n"}, STATS)
    assert (d.cpu_user_ns, d.cpu_system_ns) == (2_500_000_000, 500_000_000)


V2 = {
    "cpu.stat": "usage_usec 9000000\nuser_usec 6000000\nsystem_usec 3000000\n"
    "nr_periods 8\nnr_throttled 1\nthrottled_usec 250000\n",
    "cpu.weight": "100\n",
    "cpu.max": "50000 100000\n",
    "memory.stat": "anon 10\nfile 300\nfile_mapped 30\nkernel 77\nactive_anon 1\ninactive_anon 2\n"
    "active_file 3\ninactive_file 4\n",
    "memory.swap.current": "64\n",
    "memory.peak": "5000\n",
    "memory.events": "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n",
    "memory.max": "1048576\n",
    "memory.low": "0\n",
    "memory.swap.max": "1048576\n",
    "pids.max": "100\n",
    "cgroup.procs": "5\n",
    "io.stat": "259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\n",
}


def test_v2_figures() -> None:
    d = detail_from_v2(V2, STATS)
    assert (d.cpu_user_ns, d.cpu_system_ns) == (6_000_000_000, 3_000_000_000)
    assert (d.cfs_periods, d.cfs_throttled_periods, d.cfs_throttled_ns) == (8, 1, 250_000_000)
    assert (d.memory_cache, d.memory_mapped_file, d.memory_swap, d.memory_kernel) == (
        300,
        30,
        64,
        77,
    )
    assert (d.memory_max_usage, d.memory_failcnt) == (5000, 6)
    assert (d.cpu_quota, d.cpu_period) == (50000, 100000)
    assert d.cpu_shares == weight_to_shares(100)
    assert (d.memory_limit, d.memory_swap_limit) == (1 << 20, 2 << 20)
    assert (d.threads_max, d.processes) == (100, 1)
    assert d.block_io == (BlockIO(259, 0, read_bytes=10, write_bytes=20, reads=1, writes=2),)
    assert d.memory_pressure is not None and d.memory_pressure.some_ns == 2_000_000_000


def test_v2_unlimited_cpu_and_memory() -> None:
    d = detail_from_v2({"cpu.max": "max 100000\n", "memory.max": "max\n"}, STATS)
    assert (d.cpu_quota, d.cpu_period, d.memory_limit, d.memory_swap_limit) == (0, 100000, 0, 0)


def test_weight_and_shares_round_trip_closely() -> None:
    for shares in (2, 102, 1024, 4096, 262144):
        assert abs(weight_to_shares(shares_to_weight(shares)) - shares) <= 27


def test_parsers_skip_garbage() -> None:
    assert parse_pressure("") is None
    assert parse_blkio_v1("Total 5\nbad line here x\n", "") == ()
    assert parse_io_stat_v2("nonsense\n") == ()


def test_uevent_and_device_names(tmp_path: Path) -> None:
    assert parse_uevent_devname("MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n") == "sda"
    dev = tmp_path / "dev" / "block" / "8:0"
    dev.mkdir(parents=True)
    (dev / "uevent").write_text("DEVNAME=sda\n")
    assert block_device_name(8, 0, sys=tmp_path) == "/dev/sda"
    assert block_device_name(9, 9, sys=tmp_path) == "9:9"


def test_open_files_counts_descriptors_and_sockets(tmp_path: Path) -> None:
    fd = tmp_path / "42" / "fd"
    fd.mkdir(parents=True)
    (fd / "0").symlink_to("/dev/null")
    (fd / "3").symlink_to("socket:[1234]")
    found = open_files([42, 43], proc=tmp_path)
    assert (found.descriptors, found.sockets) == (2, 1)
