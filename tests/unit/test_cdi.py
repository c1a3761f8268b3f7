"""CDI: spec validation, qualified names, the registry's priorities and refresh, and edits
applied to an OCI spec."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from runtime.cdi import CdiRegistry, apply_edits, parse_qualified_name, parse_spec
from runtime.cdi.registry import requested_devices
from runtime.cdi.spec import ContainerEdits, DeviceNode, HookEdit, MountEdit
from runtime.errors import InvalidArgument


def spec(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cdiVersion": "0.6.0",
        "kind": "example.com/gpu",
        "devices": [{"name": "0", "containerEdits": {"env": ["GPU=0"]}}],
    }
    doc.update(over)
    return doc


def test_a_valid_spec_parses() -> None:
    s = parse_spec(
        spec(
            containerEdits={
                "deviceNodes": [{"path": "/dev/gpu0", "type": "c", "major": 1, "minor": 3}],
                "mounts": [{"hostPath": "/opt/lib", "containerPath": "/lib/gpu"}],
                "hooks": [{"hookName": "createContainer", "path": "/bin/true"}],
            }
        )
    )
    assert s.vendor == "example.com" and s.device_class == "gpu"
    assert s.devices[0].name == "0" and s.devices[0].edits.env == ("GPU=0",)
    assert s.edits.device_nodes == (DeviceNode(path="/dev/gpu0", type="c", major=1, minor=3),)


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"cdiVersion": "0.2.0"}, "cdiVersion"),
        ({"cdiVersion": None}, "cdiVersion"),
        ({"kind": "nogpu"}, "vendor.com/class"),
        ({"kind": "-bad.com/gpu"}, "vendor"),
        ({"kind": "example.com/gp.u"}, "class"),
        ({"kind": "example.com/gpu-"}, "class"),
        ({"devices": []}, "at least one device"),
        ({"devices": [{"name": "-x"}]}, "name '-x'"),
        ({"devices": [{"name": "a b"}]}, "name 'a b'"),
        ({"devices": [{"name": "a"}, {"name": "a"}]}, "defined twice"),
        ({"devices": [{"name": "a", "containerEdits": {"env": ["NOEQ"]}}]}, "KEY=VALUE"),
        (
            {"devices": [{"name": "a", "containerEdits": {"deviceNodes": [{"path": "x"}]}}]},
            "absolute",
        ),
        (
            {
                "devices": [
                    {"name": "a", "containerEdits": {"deviceNodes": [{"path": "/x", "type": "z"}]}}
                ]
            },
            "type",
        ),
        (
            {
                "devices": [
                    {
                        "name": "a",
                        "containerEdits": {"deviceNodes": [{"path": "/x", "permissions": "rwx"}]},
                    }
                ]
            },
            "permissions",
        ),
        (
            {"containerEdits": {"hooks": [{"hookName": "preStart", "path": "/bin/true"}]}},
            "hookName",
        ),
        ({"containerEdits": {"mounts": [{"containerPath": "/x"}]}}, "hostPath"),
    ],
)
def test_spec_rules_are_enforced(over: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        parse_spec(spec(**over))


def test_names_with_dots_and_colons_are_valid() -> None:
    s = parse_spec(spec(devices=[{"name": "gpu0:mig1.2"}], kind="nvidia.com/gpu_x-1"))
    assert s.devices[0].name == "gpu0:mig1.2"


@pytest.mark.parametrize(
    "bad",
    [
        "example.com/gpu",
        "gpu=0",
        "example.com/gpu=",
        "a/b=-x",
        "example.com/gpu=0\n",
        "example.com\n/gpu=0",
        "example.com/gpu\n=0",
    ],
)
def test_malformed_qualified_names(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="CDI device"):
        parse_qualified_name(bad)


def test_requested_devices_merge_field_and_annotations() -> None:
    got = requested_devices(
        ("a.com/x=1",),
        {
            "cdi.k8s.io/z": "a.com/x=3",
            "cdi.k8s.io/plugin_dev": "a.com/x=2, a.com/x=1",
            "other/key": "a.com/x=9",
        },
    )
    assert got == ["a.com/x=1", "a.com/x=2", "a.com/x=3"]


def write(directory: Path, name: str, doc: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(doc))
    return path


def test_later_directory_has_priority_and_yaml_is_read(tmp_path: Path) -> None:
    low, high = tmp_path / "etc", tmp_path / "run"
    write(low, "a.json", spec())
    (high).mkdir()
    (high / "b.yaml").write_text(
        "cdiVersion: 0.6.0\nkind: example.com/gpu\n"
        "devices:\n- name: '0'\n  containerEdits:\n    env: [GPU=high]\n"
    )
    reg = CdiRegistry((low, high, tmp_path / "missing"))
    (dev,) = reg.resolve(["example.com/gpu=0"])
    assert dev.edits.env == ("GPU=high",) and dev.source.endswith("b.yaml")


def test_same_directory_duplicates_are_a_conflict(tmp_path: Path) -> None:
    write(tmp_path, "a.json", spec())
    write(tmp_path, "b.json", spec())
    reg = CdiRegistry((tmp_path,))
    with pytest.raises(InvalidArgument, match="defined by both"):
        reg.resolve(["example.com/gpu=0"])


def test_unknown_device_names_it(tmp_path: Path) -> None:
    write(tmp_path, "a.json", spec())
    with pytest.raises(InvalidArgument, match=r"'example.com/gpu=7' is unknown"):
        CdiRegistry((tmp_path,)).resolve(["example.com/gpu=0", "example.com/gpu=7"])


def test_a_bad_file_is_skipped_and_reported(tmp_path: Path) -> None:
    write(tmp_path, "good.json", spec())
    write(tmp_path, "bad.json", spec(cdiVersion="9.9.9"))
    (tmp_path / "broken.json").write_text("{")
    reg = CdiRegistry((tmp_path,))
    assert [d.name for d in reg.devices()] == ["example.com/gpu=0"]
    assert set(reg.errors()) == {str(tmp_path / "bad.json"), str(tmp_path / "broken.json")}


def test_registry_refreshes_when_files_change(tmp_path: Path) -> None:
    reg = CdiRegistry((tmp_path,))
    assert reg.devices() == []
    path = write(tmp_path, "a.json", spec())
    assert [d.name for d in reg.devices()] == ["example.com/gpu=0"]
    write(tmp_path, "a.json", spec(devices=[{"name": "1"}, {"name": "2"}]))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # same size, newer
    assert [d.name for d in reg.devices()] == ["example.com/gpu=1", "example.com/gpu=2"]
    path.unlink()
    assert reg.devices() == []


def base_spec() -> dict[str, Any]:
    return {
        "process": {"env": ["PATH=/bin", "GPU=none"], "user": {"uid": 0, "gid": 0}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        ],
        "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}},
    }


def test_edits_land_in_the_oci_spec() -> None:
    s = base_spec()
    apply_edits(
        s,
        ContainerEdits(
            env=("GPU=0", "NEW=1"),
            device_nodes=(DeviceNode(path="/dev/fake", host_path="/dev/null"),),
            mounts=(
                MountEdit(host_path="/opt/x", container_path="/dev/x/y", options=("ro",)),
                MountEdit(host_path="/opt/a", container_path="/a"),
            ),
            hooks=(HookEdit(hook_name="createContainer", path="/bin/hook", args=("hook", "x")),),
            additional_gids=(44,),
        ),
        device="example.com/gpu=0",
    )
    assert s["process"]["env"] == ["PATH=/bin", "GPU=0", "NEW=1"]
    null = os.stat("/dev/null")
    (dev,) = s["linux"]["devices"]
    assert dev["path"] == "/dev/fake" and dev["type"] == "c"
    assert (dev["major"], dev["minor"]) == (os.major(null.st_rdev), os.minor(null.st_rdev))
    assert s["linux"]["resources"]["devices"][-1] == {
        "allow": True,
        "type": "c",
        "major": dev["major"],
        "minor": dev["minor"],
        "access": "rwm",
    }
    assert [m["destination"] for m in s["mounts"]] == ["/proc", "/dev", "/a", "/dev/x/y"]
    assert s["mounts"][-1] == {
        "destination": "/dev/x/y",
        "type": "bind",
        "source": "/opt/x",
        "options": ["ro", "rbind"],
    }
    assert s["hooks"]["createContainer"] == [{"path": "/bin/hook", "args": ["hook", "x"]}]
    assert s["process"]["user"]["additionalGids"] == [44]


def test_missing_host_node_names_the_device() -> None:
    with pytest.raises(InvalidArgument, match=r"example.com/gpu=0.*/dev/nonexistent-node"):
        apply_edits(
            base_spec(),
            ContainerEdits(device_nodes=(DeviceNode(path="/dev/nonexistent-node"),)),
            device="example.com/gpu=0",
        )


def test_inject_applies_spec_edits_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.json",
        spec(
            containerEdits={"mounts": [{"hostPath": "/opt/lib", "containerPath": "/lib/gpu"}]},
            devices=[
                {"name": "0", "containerEdits": {"env": ["GPU0=1"]}},
                {"name": "1", "containerEdits": {"env": ["GPU1=1"]}},
            ],
        ),
    )
    s = base_spec()
    CdiRegistry((tmp_path,)).inject(s, ["example.com/gpu=0", "example.com/gpu=1"])
    assert [m["destination"] for m in s["mounts"]].count("/lib/gpu") == 1
    assert s["process"]["env"][-2:] == ["GPU0=1", "GPU1=1"]
