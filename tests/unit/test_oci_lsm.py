"""AppArmor and SELinux on hosts with and without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import FailedPrecondition
from runtime.model.pods import ProfileType, SecurityProfile
from runtime.oci import lsm

NONE = lsm.HostSecurityModules()
APPARMOR = lsm.HostSecurityModules(apparmor=True)
LOCAL = SecurityProfile(ProfileType.LOCALHOST, "localhost/my-profile")


def test_detect(tmp_path: Path) -> None:
    assert lsm.detect(tmp_path) == NONE
    enabled = tmp_path / "module/apparmor/parameters/enabled"
    enabled.parent.mkdir(parents=True)
    enabled.write_text("N\n")
    assert not lsm.detect(tmp_path).apparmor
    enabled.write_text("Y\n")
    (tmp_path / "fs/selinux").mkdir(parents=True)
    (tmp_path / "fs/selinux/enforce").write_text("0")
    assert lsm.detect(tmp_path) == lsm.HostSecurityModules(apparmor=True, selinux=True)


@pytest.mark.parametrize("kind", [ProfileType.RUNTIME_DEFAULT, ProfileType.UNCONFINED])
def test_default_and_unconfined_apply_nothing_anywhere(kind: ProfileType) -> None:
    for host in (NONE, APPARMOR):
        got = lsm.apparmor_profile(SecurityProfile(kind), host=host, privileged=False, what="c")
        assert got == ""


def test_localhost_profile() -> None:
    assert lsm.apparmor_profile(LOCAL, host=APPARMOR, privileged=False, what="c") == "my-profile"
    assert lsm.apparmor_profile(LOCAL, host=NONE, privileged=True, what="c") == ""
    with pytest.raises(FailedPrecondition, match=r"container 'x': AppArmor profile 'my-prof"):
        lsm.apparmor_profile(LOCAL, host=NONE, privileged=False, what="container 'x'")
