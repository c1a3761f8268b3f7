"""A cgroup's full figures, for the cAdvisor-style metrics (``ListPodSandboxMetrics``).

:mod:`runtime.cgroups.stats` reads the few figures the CRI's stats messages carry; this
module reads what cAdvisor exports beside them, from the same files of cgroup v1 and v2:

=====================  ======================================  ===============================
figure                 cgroup v1                               cgroup v2
=====================  ======================================  ===============================
cpu user / system      ``cpuacct.usage_user`` / ``_sys`` (ns)  ``cpu.stat`` user/system_usec
CFS periods, throttled ``cpu.stat`` nr_periods, nr_throttled,  ``cpu.stat`` nr_periods,
                       throttled_time (ns)                     nr_throttled, throttled_usec
memory figures         ``memory.stat`` total_* keys            ``memory.stat`` keys
max usage, failcnt     ``memory.max_usage_in_bytes``,          ``memory.peak``,
                       ``memory.failcnt``                      ``memory.events`` max
kernel memory          ``memory.kmem.usage_in_bytes``          ``memory.stat`` kernel
swap                   ``memory.stat`` total_swap              ``memory.swap.current``
threads, max           ``pids.current``, ``pids.max``          the same
processes              lines of ``cgroup.procs``               the same
block I/O              ``blkio.throttle.io_service_bytes`` /   ``io.stat`` rbytes, wbytes,
                       ``io_serviced`` (per ``maj:min``)       rios, wios
spec (limits)          ``cpu.shares``, ``cpu.cfs_*_us``,       ``cpu.weight``, ``cpu.max``,
                       ``memory.limit_in_bytes``,              ``memory.max``, ``memory.low``,
                       ``memory.soft_limit_in_bytes``,         ``memory.swap.max``
                       ``memory.memsw.limit_in_bytes``
pressure (PSI)         the unified hierarchy's ``*.pressure``  ``cpu/memory/io.pressure``
=====================  ======================================  ===============================

"Unlimited" (``max``, or v1's page-counter maximum) reads as 0, as cAdvisor's spec metrics
show no limit. Parsers are pure functions of file texts; :func:`read_detail` is the reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.cgroups.mounts import CgroupMode, CgroupMounts, relative_cgroup_path
from runtime.cgroups.stats import CgroupStats, parse_flat_keyed, parse_single_int, read_stats

# v1 reports "no limit" as the page counter's maximum rounded to pages (about 2^63)
_V1_UNLIMITED = 1 << 62


@dataclass(frozen=True, slots=True)
class BlockIO:
    """Cumulative block I/O of a cgroup on one device (``major:minor``)."""

    major: int
    minor: int
    read_bytes: int = 0
    write_bytes: int = 0
    reads: int = 0
    writes: int = 0


@dataclass(frozen=True, slots=True)
class Pressure:
    """Pressure stall information of one resource: total stall time in nanoseconds and the
    10 s / 60 s / 300 s averages in percent, for "some" (at least one task stalled) and
    "full" (all tasks stalled)."""

    some_ns: int = 0
    full_ns: int = 0
    some_avg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    full_avg: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Pressures:
    """CPU, memory and I/O pressure of a cgroup (None: the kernel or hierarchy has none)."""

    cpu: Pressure | None = None
    memory: Pressure | None = None
    io: Pressure | None = None


@dataclass(frozen=True, slots=True)
class CgroupDetail:
    """Everything the metrics read of one cgroup (see the module docstring)."""

    stats: CgroupStats
    cpu_user_ns: int = 0
    cpu_system_ns: int = 0
    cfs_periods: int = 0
    cfs_throttled_periods: int = 0
    cfs_throttled_ns: int = 0
    memory_cache: int = 0
    memory_mapped_file: int = 0
    memory_swap: int = 0
    memory_kernel: int = 0
    memory_max_usage: int = 0
    memory_failcnt: int = 0
    active_anon: int = 0
    inactive_anon: int = 0
    active_file: int = 0
    inactive_file: int = 0
    threads: int = 0
    threads_max: int = 0
    processes: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    memory_limit: int = 0
    memory_reservation: int = 0
    memory_swap_limit: int = 0
    block_io: tuple[BlockIO, ...] = ()
    cpu_pressure: Pressure | None = None
    memory_pressure: Pressure | None = None
    io_pressure: Pressure | None = None
    pids: tuple[int, ...] = field(default=())


def _limit(text: str) -> int:
    value = parse_single_int(text)  # "max" → 0
    return 0 if value >= _V1_UNLIMITED else value


def parse_pressure(text: str) -> Pressure | None:
    """``some avg10=… avg60=… avg300=… total=<usec>`` / ``full …`` lines; None when empty."""
    totals: dict[str, int] = {}
    averages: dict[str, tuple[float, float, float]] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        values = dict(item.partition("=")[::2] for item in rest.split())
        if not values.get("total", "").isdigit():
            continue
        totals[kind] = int(values["total"]) * 1000
        try:
            averages[kind] = (
                float(values.get("avg10", 0)),
                float(values.get("avg60", 0)),
                float(values.get("avg300", 0)),
            )
        except ValueError:
            averages[kind] = (0.0, 0.0, 0.0)
    if not totals:
        return None
    zero = (0.0, 0.0, 0.0)
    return Pressure(
        some_ns=totals.get("some", 0),
        full_ns=totals.get("full", 0),
        some_avg=averages.get("some", zero),
        full_avg=averages.get("full", zero),
    )


def parse_blkio_v1(service_bytes: str, serviced: str) -> tuple[BlockIO, ...]:
    """``maj:min Read|Write|… value`` lines of the two throttle files, per device."""
    figures: dict[tuple[int, int], dict[str, int]] = {}
    for text, suffix in ((service_bytes, "bytes"), (serviced, "ops")):
        for line in text.splitlines():
            parts = line.split()
            if len(parts) != 3 or ":" not in parts[0] or not parts[2].isdigit():
                continue
            major, _, minor = parts[0].partition(":")
            if not (major.isdigit() and minor.isdigit()):
                continue
            op = parts[1].lower()
            if op in ("read", "write"):
                figures.setdefault((int(major), int(minor)), {})[f"{op}_{suffix}"] = int(parts[2])
    return tuple(
        BlockIO(
            major=maj,
            minor=mnr,
            read_bytes=f.get("read_bytes", 0),
            write_bytes=f.get("write_bytes", 0),
            reads=f.get("read_ops", 0),
            writes=f.get("write_ops", 0),
        )
        for (maj, mnr), f in sorted(figures.items())
    )


def parse_io_stat_v2(text: str) -> tuple[BlockIO, ...]:
    """``maj:min rbytes=… wbytes=… rios=… wios=…`` lines of ``io.stat``."""
    out: list[BlockIO] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        kv = {}
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if value.isdigit():
                kv[key] = int(value)
        out.append(
            BlockIO(
                major=int(major),
                minor=int(minor),
                read_bytes=kv.get("rbytes", 0),
                write_bytes=kv.get("wbytes", 0),
                reads=kv.get("rios", 0),
                writes=kv.get("wios", 0),
            )
        )
    return tuple(out)


def parse_procs(text: str) -> tuple[int, ...]:
    """The pids of ``cgroup.procs``."""
    return tuple(int(line) for line in text.split() if line.isdigit())


def _pressures(files: Mapping[str, str]) -> dict[str, Pressure | None]:
    return {
        "cpu_pressure": parse_pressure(files.get("cpu.pressure", "")),
        "memory_pressure": parse_pressure(files.get("memory.pressure", "")),
        "io_pressure": parse_pressure(files.get("io.pressure", "")),
    }


def detail_from_v1(files: Mapping[str, str], stats: CgroupStats) -> CgroupDetail:
    """Build the detail from the texts of v1 files keyed by file name (missing: empty);
    pressure files come from the unified hierarchy beside them, where there is one."""
    mem = parse_flat_keyed(files.get("memory.stat", ""))
    cpu = parse_flat_keyed(files.get("cpu.stat", ""))
    ticks = parse_flat_keyed(files.get("cpuacct.stat", ""))
    # cpuacct.stat counts USER_HZ (100 per second) ticks; the *_user/_sys files are ns
    user = files.get("cpuacct.usage_user")
    system = files.get("cpuacct.usage_sys")
    procs = parse_procs(files.get("cgroup.procs", ""))
    return CgroupDetail(
        stats=stats,
        cpu_user_ns=parse_single_int(user) if user else ticks.get("user", 0) * 10_000_000,
        cpu_system_ns=parse_single_int(system) if system else ticks.get("system", 0) * 10_000_000,
        cfs_periods=cpu.get("nr_periods", 0),
        cfs_throttled_periods=cpu.get("nr_throttled", 0),
        cfs_throttled_ns=cpu.get("throttled_time", 0),
        memory_cache=mem.get("total_cache", mem.get("cache", 0)),
        memory_mapped_file=mem.get("total_mapped_file", mem.get("mapped_file", 0)),
        memory_swap=mem.get("total_swap", mem.get("swap", 0)),
        memory_kernel=parse_single_int(files.get("memory.kmem.usage_in_bytes", "")),
        memory_max_usage=parse_single_int(files.get("memory.max_usage_in_bytes", "")),
        memory_failcnt=parse_single_int(files.get("memory.failcnt", "")),
        active_anon=mem.get("total_active_anon", mem.get("active_anon", 0)),
        inactive_anon=mem.get("total_inactive_anon", mem.get("inactive_anon", 0)),
        active_file=mem.get("total_active_file", mem.get("active_file", 0)),
        inactive_file=mem.get("total_inactive_file", mem.get("inactive_file", 0)),
        threads=stats.pids,
        threads_max=_limit(files.get("pids.max", "")),
        processes=len(procs),
        cpu_shares=parse_single_int(files.get("cpu.shares", "")),
        cpu_period=parse_single_int(files.get("cpu.cfs_period_us", "")),
        cpu_quota=max(0, parse_single_int(files.get("cpu.cfs_quota_us", ""))),
        memory_limit=_limit(files.get("memory.limit_in_bytes", "")),
        memory_reservation=_limit(files.get("memory.soft_limit_in_bytes", "")),
        memory_swap_limit=_limit(files.get("memory.memsw.limit_in_bytes", "")),
        block_io=parse_blkio_v1(
            files.get("blkio.throttle.io_service_bytes", ""),
            files.get("blkio.throttle.io_serviced", ""),
        ),
        pids=procs,
        **_pressures(files),
    )


def weight_to_shares(weight: int) -> int:
    """v2 cpu.weight (1..10000) → the v1 shares it came from (runc's conversion, inverted)."""
    if weight <= 0:
        return 0
    return 2 + ((weight - 1) * 262142) // 9999


def detail_from_v2(files: Mapping[str, str], stats: CgroupStats) -> CgroupDetail:
    """Build the detail from the texts of v2 files keyed by file name (missing: empty)."""
    mem = parse_flat_keyed(files.get("memory.stat", ""))
    cpu = parse_flat_keyed(files.get("cpu.stat", ""))
    quota, _, period = files.get("cpu.max", "").strip().partition(" ")
    procs = parse_procs(files.get("cgroup.procs", ""))
    memory_max = _limit(files.get("memory.max", ""))
    swap_max = _limit(files.get("memory.swap.max", ""))
    return CgroupDetail(
        stats=stats,
        cpu_user_ns=cpu.get("user_usec", 0) * 1000,
        cpu_system_ns=cpu.get("system_usec", 0) * 1000,
        cfs_periods=cpu.get("nr_periods", 0),
        cfs_throttled_periods=cpu.get("nr_throttled", 0),
        cfs_throttled_ns=cpu.get("throttled_usec", 0) * 1000,
        memory_cache=mem.get("file", 0),
        memory_mapped_file=mem.get("file_mapped", 0),
        memory_swap=parse_single_int(files.get("memory.swap.current", "")),
        memory_kernel=mem.get("kernel", mem.get("kernel_stack", 0) + mem.get("slab", 0)),
        memory_max_usage=parse_single_int(files.get("memory.peak", "")),
        memory_failcnt=parse_flat_keyed(files.get("memory.events", "")).get("max", 0),
        active_anon=mem.get("active_anon", 0),
        inactive_anon=mem.get("inactive_anon", 0),
        active_file=mem.get("active_file", 0),
        inactive_file=mem.get("inactive_file", 0),
        threads=stats.pids,
        threads_max=_limit(files.get("pids.max", "")),
        processes=len(procs),
        cpu_shares=weight_to_shares(parse_single_int(files.get("cpu.weight", ""))),
        cpu_period=int(period) if period.isdigit() else 0,
        cpu_quota=int(quota) if quota.isdigit() else 0,
        memory_limit=memory_max,
        memory_reservation=_limit(files.get("memory.low", "")),
        # the OCI/CRI swap figure is memory + swap; v2 keeps swap alone
        memory_swap_limit=memory_max + swap_max if memory_max and swap_max else 0,
        block_io=parse_io_stat_v2(files.get("io.stat", "")),
        pids=procs,
        **_pressures(files),
    )


_V1_FILES = {
    "cpu": ("cpu.stat", "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"),
    "cpuacct": ("cpuacct.stat", "cpuacct.usage_user", "cpuacct.usage_sys"),
    "memory": (
        "memory.stat",
        "memory.kmem.usage_in_bytes",
        "memory.max_usage_in_bytes",
        "memory.failcnt",
        "memory.limit_in_bytes",
        "memory.soft_limit_in_bytes",
        "memory.memsw.limit_in_bytes",
    ),
    "pids": ("pids.max", "cgroup.procs"),
    "blkio": ("blkio.throttle.io_service_bytes", "blkio.throttle.io_serviced"),
}
_V2_FILES = (
    "cpu.stat",
    "cpu.weight",
    "cpu.max",
    "memory.stat",
    "memory.swap.current",
    "memory.peak",
    "memory.events",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "pids.max",
    "cgroup.procs",
    "io.stat",
)
_PRESSURE_FILES = ("cpu.pressure", "memory.pressure", "io.pressure")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_detail(mounts: CgroupMounts, cgroup_path: str) -> CgroupDetail:
    """Read every figure of ``cgroup_path``. Blocking; missing files read as empty."""
    stats = read_stats(mounts, cgroup_path)
    texts: dict[str, str] = {}
    rel = relative_cgroup_path(cgroup_path)
    if mounts.mode is CgroupMode.UNIFIED:
        assert mounts.unified is not None
        for name in (*_V2_FILES, *_PRESSURE_FILES):
            text = _read(mounts.unified / rel / name)
            if text is not None:
                texts[name] = text
        return detail_from_v2(texts, stats)
    for controller, names in _V1_FILES.items():
        directory = mounts.controller_dir(controller, cgroup_path)
        if directory is None:
            continue
        for name in names:
            text = _read(directory / name)
            if text is not None:
                texts[name] = text
    if mounts.unified is not None:  # hybrid: runc makes the cgroup in cgroup2 too
        for name in _PRESSURE_FILES:
            text = _read(mounts.unified / rel / name)
            if text is not None:
                texts[name] = text
    return detail_from_v1(texts, stats)


def read_pressures(mounts: CgroupMounts, cgroup_path: str) -> Pressures:
    """The PSI files of ``cgroup_path``: in cgroup2 (the unified hierarchy beside v1 on a
    hybrid host, where runc makes every cgroup too). Blocking; missing files read as None."""
    if mounts.unified is None:
        return Pressures()
    base = mounts.unified / relative_cgroup_path(cgroup_path)

    def one(name: str) -> Pressure | None:
        text = _read(base / name)
        return None if text is None else parse_pressure(text)

    return Pressures(cpu=one("cpu.pressure"), memory=one("memory.pressure"), io=one("io.pressure"))
