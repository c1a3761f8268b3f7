"""The [stats] config section: durations parsed, bad values refused with what to fix."""

from __future__ import annotations

import pytest

from cri.config import from_mapping
from runtime.errors import InvalidArgument


def test_defaults_and_durations() -> None:
    assert from_mapping({}).stats.layer_refresh_interval == 10.0
    cfg = from_mapping({"stats": {"layer_refresh_interval": "500ms", "layer_file_budget": 5000}})
    assert cfg.stats.layer_refresh_interval == 0.5
    assert cfg.stats.layer_file_budget == 5000


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"layer_refresh_interval": "0s"}, "layer_refresh_interval"),
        ({"layer_file_budget": 3}, "at least 100"),
        ({"layer_budget": 3}, "unknown key stats.layer_budget"),
    ],
)
def test_bad_values_say_what_to_fix(section: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        from_mapping({"stats": section})
