"""Where the cgroup hierarchies are mounted, and which mode the host runs in.

Terms:

- **mode**: ``LEGACY`` (cgroup v1 controllers only), ``HYBRID`` (v1 controllers plus an empty
  cgroup2 hierarchy beside them, usually at ``/sys/fs/cgroup/unified``) or ``UNIFIED`` (cgroup
  v2 only). In HYBRID mode the resource controllers are still v1, so stats and limits are v1.
- **cgroup path**: the OCI ``linux.cgroupsPath`` as the cgroupfs driver reads it, an absolute
  path such as ``/pinnace/<pod>/<ctr>`` relative to the root of every hierarchy.
- **hierarchy directory**: the cgroup path joined under one hierarchy's mount point, e.g.
  ``/sys/fs/cgroup/memory/pinnace/<pod>/<ctr>`` (v1) or ``/sys/fs/cgroup/pinnace/<pod>/<ctr>``
  (v2).

The parsing here is pure (it takes the text of ``/proc/self/mountinfo``); :func:`detect` is the
thin reader. Detection reads one small file and is meant to run once, at start-up.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from runtime.errors import InvalidArgument

# Mount options that are not controller names in a v1 cgroup mount's super options.
_NON_CONTROLLER_OPTS = frozenset(
    {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "clone_children"}
)


class CgroupDriver(enum.StrEnum):
    """Who manages the cgroups of pods (kubelet's ``--cgroup-driver`` must agree): pinnace
    writing cgroupfs paths (``/pinnace/<pod>/<ctr>``) or systemd (``slice:prefix:name`` paths).
    A ``str`` so that config dumps and comparisons with the configured word keep working."""

    CGROUPFS = "cgroupfs"
    SYSTEMD = "systemd"


class CgroupMode(enum.Enum):
    """How the host's cgroups are laid out (see the module docstring)."""

    LEGACY = "legacy"
    HYBRID = "hybrid"
    UNIFIED = "unified"


@dataclass(frozen=True, slots=True)
class CgroupMounts:
    """The cgroup hierarchies of one host.

    ``v1`` maps each v1 controller name (``memory``, ``cpuacct``, ``name=systemd``, …) to its
    mount point; co-mounted controllers (``cpu,cpuacct``) map to the same directory.
    ``unified`` is the cgroup2 mount point, or None when there is none.
    """

    mode: CgroupMode
    v1: Mapping[str, Path] = field(default_factory=dict)
    unified: Path | None = None

    def hierarchy_dirs(self, cgroup_path: str) -> list[Path]:
        """Every directory that ``cgroup_path`` names, one per mounted hierarchy (deduplicated),
        v2 included in HYBRID mode, since runc creates the cgroup there too."""
        rel = relative_cgroup_path(cgroup_path)
        roots: list[Path] = []
        for mount in self.v1.values():
            if mount not in roots:
                roots.append(mount)
        if self.unified is not None and self.unified not in roots:
            roots.append(self.unified)
        return [root / rel for root in roots]

    def controller_dir(self, controller: str, cgroup_path: str) -> Path | None:
        """The directory of ``cgroup_path`` that carries ``controller``'s files: the v1
        hierarchy with that controller, or the unified one in UNIFIED mode. None when the
        controller is not mounted."""
        rel = relative_cgroup_path(cgroup_path)
        if self.mode is CgroupMode.UNIFIED:
            assert self.unified is not None
            return self.unified / rel
        mount = self.v1.get(controller)
        return None if mount is None else mount / rel


def relative_cgroup_path(cgroup_path: str) -> PurePosixPath:
    """``/pinnace/p/c`` → ``pinnace/p/c``; refuses ``..`` and empty paths (they would escape or
    name a hierarchy root, which we must never remove or limit)."""
    parts = [p for p in PurePosixPath(cgroup_path).parts if p != "/"]
    if not parts or any(p in (".", "..") for p in parts):
        raise InvalidArgument(f"bad cgroup path {cgroup_path!r}")
    return PurePosixPath(*parts)


def parse_mountinfo(text: str) -> CgroupMounts:
    """Find the cgroup mounts in the text of ``/proc/self/mountinfo`` and decide the mode."""
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in text.splitlines():
        # a node has thousands of mounts (every pod's), a dozen of them cgroups
        if " - cgroup" not in line:
            continue
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields = before.split()
        tail = after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_opts = tail[0], tail[2]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mount_point = Path(_unescape(fields[4]))
        if fstype == "cgroup2":
            unified = mount_point
        elif fstype == "cgroup":
            for opt in super_opts.split(","):
                if opt and opt not in _NON_CONTROLLER_OPTS and not opt.startswith("release_agent"):
                    v1[opt] = mount_point
    if v1:
        mode = CgroupMode.HYBRID if unified is not None else CgroupMode.LEGACY
    elif unified is not None:
        mode = CgroupMode.UNIFIED
    else:
        raise InvalidArgument("no cgroup hierarchy is mounted")
    return CgroupMounts(mode=mode, v1=v1, unified=unified)


def _unescape(s: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def detect(mountinfo: Path = Path("/proc/self/mountinfo")) -> CgroupMounts:
    """Read ``mountinfo`` and return the host's cgroup mounts. Blocking (one small read)."""
    return parse_mountinfo(mountinfo.read_text())


def mode() -> CgroupMode:
    """The host's cgroup mode. Blocking (one small read)."""
    return detect().mode
