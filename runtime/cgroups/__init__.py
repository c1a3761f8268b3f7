"""cgroup v1 and v2: mode detection, per-container stats, CPU rates and removal.

Everything here works with the cgroupfs driver's paths (``/pinnace/<pod>/<ctr>``); the
readers are blocking and cheap, so async callers wrap them in ``asyncio.to_thread``.
"""

from runtime.cgroups.mounts import (
    CgroupDriver,
    CgroupMode,
    CgroupMounts,
    detect,
    mode,
    parse_mountinfo,
    relative_cgroup_path,
)
from runtime.cgroups.remove import remove
from runtime.cgroups.sampler import CpuReading, CpuSampler
from runtime.cgroups.stats import (
    CgroupStats,
    parse_flat_keyed,
    read_oom_kills,
    read_stats,
    stats_from_v1,
    stats_from_v2,
)

__all__ = [
    "CgroupDriver",
    "CgroupMode",
    "CgroupMounts",
    "CgroupStats",
    "CpuReading",
    "CpuSampler",
    "detect",
    "mode",
    "parse_flat_keyed",
    "parse_mountinfo",
    "read_oom_kills",
    "read_stats",
    "relative_cgroup_path",
    "remove",
    "stats_from_v1",
    "stats_from_v2",
]
