"""Linux security modules a container may ask for: AppArmor profiles and SELinux labels, on
hosts that may have neither.

AppArmor
    ``Localhost`` names a profile loaded on the host: it is the spec's
    ``process.apparmorProfile`` where the host has AppArmor, and FailedPrecondition where it
    has not (runc would otherwise fail the start with a less helpful message, and silently
    running unconfined is not what the pod asked for). ``RuntimeDefault`` and ``Unconfined``
    are accepted everywhere; pinnace ships no AppArmor profile of its own, so neither applies
    one (the container records that nothing was applied). Privileged containers are
    unconfined, as in containerd.
SELinux
    Labels (``selinux_options``) and ``selinux_relabel`` are accepted and ignored where
    SELinux is off, which :func:`detect` reports; pinnace applies no labels either way.

Detection reads sysfs once at start: AppArmor is enabled when
``/sys/module/apparmor/parameters/enabled`` says ``Y``; SELinux when selinuxfs is mounted
(``/sys/fs/selinux/enforce`` exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.errors import FailedPrecondition
from runtime.model.pods import ProfileType, SecurityProfile


@dataclass(frozen=True, slots=True)
class HostSecurityModules:
    """Which security modules the host kernel has enabled."""

    apparmor: bool = False
    selinux: bool = False


def detect(sys_root: Path = Path("/sys")) -> HostSecurityModules:
    """Blocking: the host's enabled security modules, from sysfs under ``sys_root``."""
    try:
        enabled = (sys_root / "module/apparmor/parameters/enabled").read_text().strip()
    except OSError:
        enabled = ""
    return HostSecurityModules(
        apparmor=enabled == "Y",
        selinux=(sys_root / "fs/selinux/enforce").exists(),
    )


def apparmor_profile(
    profile: SecurityProfile, *, host: HostSecurityModules, privileged: bool, what: str
) -> str:
    """The ``process.apparmorProfile`` for ``profile`` ("" when none is applied).
    FailedPrecondition for a Localhost profile on a host without AppArmor; ``what`` names
    the container or sandbox in the message."""
    if privileged or profile.type is not ProfileType.LOCALHOST:
        return ""
    name = profile.localhost_ref.removeprefix("localhost/")
    if not host.apparmor:
        raise FailedPrecondition(
            f"{what}: AppArmor profile {name!r} requested, but AppArmor is not enabled on "
            "this host; use the RuntimeDefault or Unconfined profile"
        )
    return name
