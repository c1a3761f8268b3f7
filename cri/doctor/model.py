"""The words of ``pinnace doctor``: a finding per check, and the node settings checks read.

Terms:
  finding   one check's result: its name, a level, what was found, and what to do (``fix``)
            when the level is not ``ok``.
  level     ``ok``; ``warn`` (pods run, but something they may ask for is missing: hugetlb
            limits, AppArmor profiles); ``fail`` (it blocks running pods: no OCI runtime, no
            conmon, pinnaced down, no CNI network); ``skip`` (not applicable here).
  settings  the paths the checks look at: pinnaced's own effective configuration when it
            answers (its verbose Status carries it), else the config file, else the defaults;
            options override each.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class Level(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    level: Level
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "level": self.level.value, "detail": self.detail,
                "fix": self.fix}  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Where things are on this node (see "settings")."""

    root: Path = Path("/var/lib/pinnace")
    state: Path = Path("/run/pinnace")
    socket: Path = Path("/run/pinnace/pinnace.sock")
    registry_hosts_dir: Path = Path("/etc/pinnace/certs.d")
    cni_conf_dir: Path = Path("/etc/cni/net.d")
    cni_bin_dirs: tuple[Path, ...] = (Path("/opt/cni/bin"), Path("/usr/lib/cni"))
    conmon: Path = Path("/usr/bin/conmon")
    #: handler name -> binary; the default handler's runtime is required, others optional
    runtimes: dict[str, Path] = field(
        default_factory=lambda: {"runc": Path("/usr/sbin/runc"), "crun": Path("/usr/bin/crun")}
    )
    default_runtime: str = "runc"
    streaming: str = "127.0.0.1:0"


def blocking(findings: list[Finding]) -> bool:
    """Whether anything found blocks running pods."""
    return any(f.level is Level.FAIL for f in findings)
