"""Command/args, environment and working directory rules of runtime.oci.process."""

from __future__ import annotations

import pytest

from runtime.errors import InvalidArgument
from runtime.images.manifest import ImageConfig
from runtime.oci import process
from runtime.oci.defaults import DEFAULT_PATH


def image(**kw: object) -> ImageConfig:
    return ImageConfig(architecture="amd64", os="linux", **kw)  # type: ignore[arg-type]


EP = ("/ep", "-x")
CMD = ("cmd-a", "cmd-b")


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "command", "args", "expected"),
    [
        # neither set: ENTRYPOINT + CMD
        (EP, CMD, (), (), ["/ep", "-x", "cmd-a", "cmd-b"]),
        (EP, (), (), (), ["/ep", "-x"]),
        ((), CMD, (), (), ["cmd-a", "cmd-b"]),
        # command set: replaces ENTRYPOINT, image CMD ignored, args appended
        (EP, CMD, ("/bin/sh",), (), ["/bin/sh"]),
        (EP, CMD, ("/bin/sh",), ("-c", "true"), ["/bin/sh", "-c", "true"]),
        ((), (), ("/bin/sh",), (), ["/bin/sh"]),
        # only args: replace CMD after ENTRYPOINT
        (EP, CMD, (), ("a1",), ["/ep", "-x", "a1"]),
        ((), CMD, (), ("a1", "a2"), ["a1", "a2"]),
        # Docker's reset entrypoint [""] counts as none
        (("",), CMD, (), (), ["cmd-a", "cmd-b"]),
        (("",), CMD, (), ("x",), ["x"]),
    ],
)
def test_command_args_matrix(
    entrypoint: tuple[str, ...],
    cmd: tuple[str, ...],
    command: tuple[str, ...],
    args: tuple[str, ...],
    expected: list[str],
) -> None:
    img = image(entrypoint=entrypoint, cmd=cmd)
    assert process.process_args(img, command=command, args=args) == expected


@pytest.mark.parametrize("entrypoint", [(), ("",)])
def test_nothing_to_run_is_invalid(entrypoint: tuple[str, ...]) -> None:
    with pytest.raises(InvalidArgument, match="no command specified"):
        process.process_args(image(entrypoint=entrypoint))


def test_merge_env_overrides_in_place_and_unsets() -> None:
    merged = process.merge_env(["A=1", "B=2", "C=3"], ["B=20", "D=4", "C", "A=10=x"])
    assert merged == ["A=10=x", "B=20", "D=4"]


def test_unset_then_set_again_keeps_first_position() -> None:
    assert process.merge_env(["A=1", "B=2"], ["A", "A=3"]) == ["A=3", "B=2"]


def test_container_env_order_and_defaults() -> None:
    img = image(env=("FOO=img", "BAR=img"))
    env = process.container_env(img, (("FOO", "cfg"), ("NEW", "1")), hostname="pod-a")
    assert env == [f"PATH={DEFAULT_PATH}", "HOSTNAME=pod-a", "FOO=cfg", "BAR=img", "NEW=1"]


def test_image_path_replaces_default_and_config_hostname_wins() -> None:
    img = image(env=("PATH=/opt/bin",))
    env = process.container_env(img, (("HOSTNAME", "mine"), ("PATH", "/x")), hostname="pod")
    assert env == ["PATH=/x", "HOSTNAME=mine"]


def test_no_hostname_no_env() -> None:
    assert process.container_env(image(), (), hostname="") == [f"PATH={DEFAULT_PATH}"]


@pytest.mark.parametrize(
    ("config", "img", "expected"),
    [("/cfg", "/img", "/cfg"), ("", "/img", "/img"), ("", "", "/")],
)
def test_working_dir(config: str, img: str, expected: str) -> None:
    assert process.working_dir(config, image(working_dir=img)) == expected


def test_relative_working_dir_is_invalid() -> None:
    with pytest.raises(InvalidArgument):
        process.working_dir("rel", image())
