"""Capability names, masks and the add/drop/ALL rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.oci import caps
from runtime.oci.defaults import DEFAULT_CAPABILITIES

EVERYTHING = caps.CAPABILITY_NAMES[:24]  # pretend the daemon lacks CAP_SYS_RESOURCE and up


def apply(add: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> list[str]:
    return caps.apply_add_drop(
        DEFAULT_CAPABILITIES, add=add, drop=drop, all_capabilities=EVERYTHING
    )


def test_default_unchanged() -> None:
    assert apply() == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14


def test_add_and_drop_accept_cri_and_oci_spellings() -> None:
    got = apply(add=("NET_ADMIN", "cap_sys_time", "CHOWN"), drop=("net_raw", "CAP_KILL"))
    assert got[-2:] == ["CAP_NET_ADMIN", "CAP_SYS_TIME"]
    assert "CAP_NET_RAW" not in got and "CAP_KILL" not in got
    assert got.count("CAP_CHOWN") == 1


def test_add_all_then_drop_one() -> None:
    got = apply(add=("ALL",), drop=("CHOWN",))
    assert got == [c for c in EVERYTHING if c != "CAP_CHOWN"]


def test_drop_all_then_add_one() -> None:
    assert apply(add=("NET_BIND_SERVICE",), drop=("all",)) == ["CAP_NET_BIND_SERVICE"]


def test_unknown_capability() -> None:
    with pytest.raises(InvalidArgument, match="FLY"):
        apply(add=("FLY",))


def test_masks() -> None:
    assert caps.to_mask(["CAP_CHOWN", "CAP_KILL"]) == 0b100001
    assert caps.from_mask(0b100001) == ("CAP_CHOWN", "CAP_KILL")
    assert caps.to_mask(DEFAULT_CAPABILITIES) == 0xA80425FB  # Docker's well-known CapBnd


def test_current_capabilities(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t00000000a80425fb\n")
    assert set(caps.current_capabilities(status)) == set(DEFAULT_CAPABILITIES)
    own = caps.current_capabilities()
    assert all(c in caps.CAPABILITY_NAMES for c in own)
