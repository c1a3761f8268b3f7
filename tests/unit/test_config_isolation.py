"""Config that keeps two daemons on one host apart: the pod cgroup root."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri import config as config_mod
from runtime.errors import InvalidArgument


def test_the_default_root_keeps_the_plain_name() -> None:
    assert config_mod.pod_cgroup_root(config_mod.Config()) == "/pinnace"


def test_other_roots_get_cgroup_roots_of_their_own() -> None:
    one = config_mod.default_cgroup_root(Path("/tmp/a/root"))
    two = config_mod.default_cgroup_root(Path("/tmp/b/root"))
    assert one != two
    assert one.startswith("/pinnace-") and len(one) == len("/pinnace-") + 12
    assert one == config_mod.default_cgroup_root(Path("/tmp/a/root"))  # stable over restarts


def test_a_configured_cgroup_root_wins() -> None:
    cfg = config_mod.from_mapping(
        {"daemon": {"root": "/srv/p"}, "runtime": {"cgroup_root": "/pods/p1"}}
    )
    assert config_mod.pod_cgroup_root(cfg) == "/pods/p1"


@pytest.mark.parametrize("bad", ["pinnace", "/", "/a/../b", "/a//b", "/a b", "/a:b", "/a/"])
def test_a_cgroup_root_that_could_escape_or_confuse_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match=r"runtime\.cgroup_root"):
        config_mod.from_mapping({"runtime": {"cgroup_root": bad}})
