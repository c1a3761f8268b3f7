"""Linux capabilities: their names, the set this process holds, and the CRI's add/drop rules.

Terms:

capability name
    ``CAP_`` followed by the kernel's name (``CAP_NET_ADMIN``). The CRI passes names without
    the prefix (``NET_ADMIN``); both spellings are accepted, in any case.
ALL
    In an add list, every capability the daemon itself holds; in a drop list, every one. Add
    and drop of ``ALL`` are applied before the individual names, so ``add: [ALL], drop:
    [CHOWN]`` is everything but CAP_CHOWN (containerd's rule).
current capabilities
    The daemon's own effective set. A privileged container gets exactly these: asking runc
    for one we do not hold (CAP_SYS_RESOURCE on the test machines) fails the container.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from runtime.errors import InvalidArgument

# Index = capability number (linux/capability.h).
CAPABILITY_NAMES: tuple[str, ...] = tuple(
    "CAP_" + n
    for n in (
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
        "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
        "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
        "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
        "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
        "CHECKPOINT_RESTORE"
    ).split()
)
_KNOWN = frozenset(CAPABILITY_NAMES)


def normalize(name: str) -> str:
    """``net_admin`` / ``CAP_NET_ADMIN`` → ``CAP_NET_ADMIN``; InvalidArgument if unknown."""
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in _KNOWN:
        raise InvalidArgument(f"unknown capability {name!r}")
    return full


def from_mask(mask: int) -> tuple[str, ...]:
    """The names of the capabilities set in a ``CapEff``-style bit mask, by number."""
    return tuple(n for bit, n in enumerate(CAPABILITY_NAMES) if mask >> bit & 1)


def to_mask(names: Iterable[str]) -> int:
    """The bit mask of ``names`` (as /proc/<pid>/status ``CapBnd`` shows it)."""
    mask = 0
    for n in names:
        mask |= 1 << CAPABILITY_NAMES.index(normalize(n))
    return mask


def current_capabilities(status: Path = Path("/proc/self/status")) -> tuple[str, ...]:
    """The effective capabilities of this process (bits the kernel has that we do not name,
    newer than CAP_CHECKPOINT_RESTORE, are left out)."""
    for line in status.read_text().splitlines():
        if line.startswith("CapEff:"):
            return from_mask(int(line.split()[1], 16))
    raise InvalidArgument(f"{status} has no CapEff line")


def apply_add_drop(
    base: Sequence[str],
    *,
    add: Sequence[str],
    drop: Sequence[str],
    all_capabilities: Sequence[str],
) -> list[str]:
    """``base`` with ``ALL`` then the named capabilities added and dropped, order kept and
    additions appended. Unknown names raise InvalidArgument."""
    adds = [a for a in add if a.strip().upper() != "ALL"]
    drops = [d for d in drop if d.strip().upper() != "ALL"]
    result = list(base)
    if len(adds) != len(add):
        result = list(all_capabilities)
    if len(drops) != len(drop):
        result = []
    for name in map(normalize, adds):
        if name not in result:
            result.append(name)
    dropped = {normalize(d) for d in drops}
    return [c for c in result if c not in dropped]
