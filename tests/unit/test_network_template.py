from __future__ import annotations

import json

import pytest

from runtime.errors import InvalidArgument
from runtime.network.template import RENDERED_NAME, parse_cidrs, render, write_rendered

TEMPLATE = json.dumps(
    {
        "cniVersion": "1.0.0",
        "name": "k8s",
        "plugins": [
            {
                "type": "bridge",
                "ipam": {"type": "host-local", "subnet": "{{.PodCIDR}}"},
            }
        ],
    }
).replace('"ranges-here"', "{{.PodCIDRRanges}}")


def test_parse_cidrs_normalises_and_splits_dual_stack() -> None:
    assert parse_cidrs("10.244.1.7/24, fd00::/64") == ["10.244.1.0/24", "fd00::/64"]


@pytest.mark.parametrize("bad", ["", "10.0.0.0/33", "banana"])
def test_parse_cidrs_refuses(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_cidrs(bad)


def test_render_fills_placeholders() -> None:
    out = json.loads(render(TEMPLATE, ["10.244.1.0/24"]))
    assert out["plugins"][0]["ipam"]["subnet"] == "10.244.1.0/24"
    ranges = json.loads(render('{"ranges": [{{.PodCIDRRanges}}]}', ["10.1.0.0/16", "fd00::/64"]))
    assert ranges["ranges"] == [[{"subnet": "10.1.0.0/16"}], [{"subnet": "fd00::/64"}]]


def test_render_must_give_a_json_object() -> None:
    with pytest.raises(InvalidArgument):
        render("not json {{.PodCIDR}}", ["10.0.0.0/8"])


def test_write_rendered(tmp_path) -> None:
    template = tmp_path / "template.json"
    template.write_text(TEMPLATE)
    path = write_rendered(tmp_path / "net.d", template, "10.9.0.0/16")
    assert path.name == RENDERED_NAME
    assert json.loads(path.read_text())["plugins"][0]["ipam"]["subnet"] == "10.9.0.0/16"
