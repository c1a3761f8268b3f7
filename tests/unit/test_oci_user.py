"""User resolution through a fake image rootfs, and the in-root file reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.oci import user
from runtime.oci.user import ResolvedUser

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1::/:/bin/false
app:x:1000:1001:App:/home/app:/bin/sh
broken:line
+nis
nobody:x:65534:65534:nobody:/:/bin/false
"""
GROUP = """\
root:x:0:
wheel:x:10:app,other
app:x:1001:app
staff:x:50:other, app
nogroup:x:65534:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.mark.parametrize(
    ("userstr", "expected"),
    [
        ("", ResolvedUser(0, 0, (0,))),
        ("root", ResolvedUser(0, 0, (0,))),
        ("app", ResolvedUser(1000, 1001, (10, 50, 1001))),
        ("1000", ResolvedUser(1000, 1001, (10, 50, 1001))),
        ("app:wheel", ResolvedUser(1000, 10, (10, 50))),
        ("app:7", ResolvedUser(1000, 7, (7, 10, 50))),
        ("1000:staff", ResolvedUser(1000, 50, (10, 50))),
        # both numeric: no lookup at all (containerd)
        ("1000:1000", ResolvedUser(1000, 1000, (10, 50, 1000))),
        # a uid without a passwd entry is fine: gid 0, no memberships
        ("4242", ResolvedUser(4242, 0, (0,))),
        ("4242:9", ResolvedUser(4242, 9, (9,))),
    ],
)
def test_resolve(rootfs: Path, userstr: str, expected: ResolvedUser) -> None:
    assert user.resolve_user(rootfs, userstr) == expected


def test_supplemental_groups_merge_sorted(rootfs: Path) -> None:
    got = user.resolve_user(rootfs, "app", supplemental_groups=(3000, 10, 5))
    assert got == ResolvedUser(1000, 1001, (5, 10, 50, 1001, 3000))
    assert got.to_spec() == {"uid": 1000, "gid": 1001, "additionalGids": [5, 10, 50, 1001, 3000]}


def test_strict_policy_ignores_the_images_group_memberships(rootfs: Path) -> None:
    got = user.resolve_user(rootfs, "app", supplemental_groups=(3000,), strict_groups=True)
    assert got == ResolvedUser(1000, 1001, (1001, 3000))
    assert user.resolve_user(rootfs, "app:wheel", strict_groups=True) == ResolvedUser(
        1000, 10, (10,)
    )


@pytest.mark.parametrize(
    ("userstr", "match"),
    [
        ("ghost", "user 'ghost' not found in /etc/passwd of image img:1"),
        ("app:ghosts", "group 'ghosts' not found in /etc/group of image img:1"),
        ("1:2:3", "invalid user"),
        (":5", "invalid user"),
        ("5:", "invalid user"),
        ("2147483648", "uid out of range"),
        ("1:2147483648", "gid out of range"),
        ("-1", "out of range"),
    ],
)
def test_resolve_errors(rootfs: Path, userstr: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        user.resolve_user(rootfs, userstr, image="img:1")


def test_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert user.resolve_user(empty, "123") == ResolvedUser(123, 0, (0,))
    assert user.resolve_user(empty, "") == ResolvedUser(0, 0, (0,))
    with pytest.raises(InvalidArgument, match="'app' not found"):
        user.resolve_user(empty, "app")


@pytest.mark.parametrize(
    ("image_user", "kw", "expected"),
    [
        ("app:wheel", {}, "app:wheel"),
        ("app:wheel", {"run_as_user": 5}, "5"),
        ("app:wheel", {"run_as_user": 5, "run_as_group": 6}, "5:6"),
        ("app:wheel", {"run_as_username": "daemon", "run_as_user": 5}, "daemon"),
        ("app", {"run_as_username": "daemon", "run_as_group": 7}, "daemon:7"),
        ("app:wheel", {"run_as_group": 7}, "app:7"),
        ("", {"run_as_group": 7}, ":7"),
        ("", {}, ""),
        ("", {"run_as_user": 0}, "0"),
    ],
)
def test_user_string(image_user: str, kw: dict[str, object], expected: str) -> None:
    assert user.user_string(image_user, **kw) == expected  # type: ignore[arg-type]


def test_group_without_any_user_is_invalid(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument):
        user.resolve_user(rootfs, user.user_string("", run_as_group=7))


def test_symlinks_inside_the_root_are_followed(rootfs: Path) -> None:
    (rootfs / "usr" / "share").mkdir(parents=True)
    (rootfs / "usr" / "share" / "passwd").write_text("zed:x:77:78::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("../usr/share/passwd", rootfs / "etc" / "passwd")
    assert user.resolve_user(rootfs, "zed").uid == 77


def test_absolute_symlink_resolves_inside_the_root(rootfs: Path, tmp_path: Path) -> None:
    (rootfs / "real").mkdir()
    (rootfs / "real" / "pw").write_text("inside:x:5:6::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    # "/real/pw" on the host does not exist; inside the root it does.
    os.symlink("/real/pw", rootfs / "etc" / "passwd")
    assert user.resolve_user(rootfs, "inside") == ResolvedUser(5, 6, (6,))


def test_absolute_symlink_to_host_file_reads_the_root_copy(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    # /etc/hostname exists on the host; inside this root it does not.
    os.symlink("/etc/hostname", rootfs / "etc" / "passwd")
    assert user.read_in_root(rootfs, "/etc/passwd") is None
    with pytest.raises(InvalidArgument, match="not found"):
        user.resolve_user(rootfs, "root")


def test_symlink_escaping_the_root_is_refused(rootfs: Path, tmp_path: Path) -> None:
    (tmp_path / "host-passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("../../host-passwd", rootfs / "etc" / "passwd")
    with pytest.raises(InvalidArgument, match="out of the root"):
        user.resolve_user(rootfs, "evil")


def test_escaping_directory_symlink_is_refused(rootfs: Path, tmp_path: Path) -> None:
    (tmp_path / "hostetc").mkdir()
    (tmp_path / "hostetc" / "group").write_text("g:x:1:app\n")
    (rootfs / "etc" / "group").unlink()
    os.symlink("../../../../../../../..", rootfs / "up")
    os.symlink("/up/" + str(tmp_path / "hostetc" / "group"), rootfs / "etc" / "group")
    with pytest.raises(InvalidArgument, match="out of the root"):
        user.resolve_user(rootfs, "app")


def test_symlink_loop(rootfs: Path) -> None:
    (rootfs / "etc" / "passwd").unlink()
    os.symlink("passwd2", rootfs / "etc" / "passwd")
    os.symlink("passwd", rootfs / "etc" / "passwd2")
    with pytest.raises(InvalidArgument, match="too many symlinks"):
        user.resolve_user(rootfs, "app")


def test_non_regular_and_dotdot_inside(rootfs: Path) -> None:
    assert user.read_in_root(rootfs, "/etc") is None
    assert user.read_in_root(rootfs, "/") is None
    assert user.read_in_root(rootfs, "/etc/passwd/x") is None
    assert user.read_in_root(rootfs, "/etc/../etc/./group") == GROUP.encode()
    with pytest.raises(InvalidArgument):
        user.read_in_root(rootfs, "/../etc/group")


def test_parsers_skip_junk() -> None:
    assert [e.name for e in user.parse_passwd(PASSWD)] == ["root", "daemon", "app", "nobody"]
    staff = next(g for g in user.parse_group(GROUP) if g.name == "staff")
    assert staff.members == ("other", "app")
