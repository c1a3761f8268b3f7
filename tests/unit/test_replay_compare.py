"""The kubelet-replay comparison (tests/support/replay.py): what it accepts and what it names."""

from __future__ import annotations

from tests.support.replay import Rule, Substitutions, code_class, compare


def _paths(mismatches: list) -> list[str]:
    return [m.path for m in mismatches]


def test_equal_answers_and_extra_fields_pass() -> None:
    ref = {"status": {"state": "CONTAINER_RUNNING", "labels": {"a": "b"}}}
    act = {"status": {"state": "CONTAINER_RUNNING", "labels": {"a": "b", "x": "y"}, "pid": 3}}
    assert compare("ContainerStatus", ref, act) == []


def test_missing_and_different_fields_are_named_with_method_and_path() -> None:
    ref = {"status": {"image": {"image": "busybox:1.35"}, "exit_code": 143, "reason": "Error"}}
    act = {"status": {"image": {"image": "sha256:abc"}, "exit_code": 143}}
    found = compare("ContainerStatus", ref, act)
    assert _paths(found) == ["status.image.image", "status.reason"]
    assert str(found[0]).startswith("ContainerStatus: status.image.image: is 'sha256:abc'")
    assert "missing" in found[1].why


def test_shape_rule_accepts_other_values_of_the_same_type_only() -> None:
    rules = {"status.created_at": Rule.SHAPE, "image_filesystems": Rule.SHAPE}
    assert (
        compare("X", {"status": {"created_at": "1"}}, {"status": {"created_at": "9"}}, rules=rules)
        == []
    )
    wrong_type = compare(
        "X", {"status": {"created_at": "1"}}, {"status": {"created_at": "abc"}}, rules=rules
    )
    assert _paths(wrong_type) == ["status.created_at"]
    fs_ref = {"image_filesystems": [{"fs_id": {"mountpoint": "/a"}, "used_bytes": {"value": "5"}}]}
    fs_act = {"image_filesystems": [{"fs_id": {"mountpoint": "/b"}, "used_bytes": {"value": "7"}}]}
    assert compare("ImageFsInfo", fs_ref, fs_act, rules=rules) == []
    # a field SHAPE still demands presence
    assert _paths(compare("ImageFsInfo", fs_ref, {"image_filesystems": [{}]}, rules=rules)) == [
        "image_filesystems[].fs_id",
        "image_filesystems[].used_bytes",
    ]


def test_ignore_rule_skips_a_field() -> None:
    assert compare("X", {"info": {"a": "1"}}, {}, rules={"info": Rule.IGNORE}) == []


def test_list_items_pair_by_id_and_type_not_position() -> None:
    ref = {
        "containers": [
            {"id": "a", "state": "CONTAINER_RUNNING"},
            {"id": "b", "state": "CONTAINER_EXITED"},
        ]
    }
    act = {
        "containers": [
            {"id": "b", "state": "CONTAINER_RUNNING"},
            {"id": "a", "state": "CONTAINER_RUNNING"},
        ]
    }
    found = compare("ListContainers", ref, act)
    assert _paths(found) == ["containers[].state"]
    assert "CONTAINER_EXITED" in found[0].why
    missing = compare(
        "ListContainers", ref, {"containers": [{"id": "a", "state": "CONTAINER_RUNNING"}]}
    )
    assert [m.why for m in missing] == ["no item with id 'b'"]
    conditions = {"status": {"conditions": [{"type": "RuntimeReady", "status": True}]}}
    flipped = {
        "status": {
            "conditions": [
                {"type": "NetworkReady", "status": True},
                {"type": "RuntimeReady", "status": False},
            ]
        }
    }
    assert _paths(compare("Status", conditions, flipped)) == ["status.conditions[].status"]


def test_lists_of_scalars_compare_in_order_and_length() -> None:
    ref = {"masked": ["/proc/kcore", "/proc/keys"]}
    assert compare("X", ref, {"masked": ["/proc/kcore", "/proc/keys"]}) == []
    assert _paths(compare("X", ref, {"masked": ["/proc/kcore"]})) == ["masked"]


def test_substitutions_rewrite_ids_and_paths_longest_first() -> None:
    subs = Substitutions()
    subs.add("/var/log/pods", "/tmp/t/pods")
    subs.add("abc", "XYZ")
    subs.add("abcdef", "LONG")
    subs.add("same", "same")  # a no-op is not recorded
    value = {"log": "/var/log/pods/ns_abcdef/0.log", "ids": ["abc", "abcdef"], "n": 3, "abc": True}
    assert subs.apply(value) == {
        "log": "/tmp/t/pods/ns_LONG/0.log",
        "ids": ["XYZ", "LONG"],
        "n": 3,
        "XYZ": True,
    }
    assert "same" not in subs.pairs


def test_code_class() -> None:
    assert code_class("OK") == "OK"
    assert code_class("NOT_FOUND") == code_class("UNIMPLEMENTED") == "error"
