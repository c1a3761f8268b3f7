"""A config file pinnaced cannot use is one ``InvalidArgument`` naming the file and what is
wrong with it (``pinnaced`` prints it as one line and exits 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri import config as config_mod
from runtime.errors import InvalidArgument


def test_a_config_that_is_not_utf8_names_the_file_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[daemon]\nlog_level = "info"\n\xff\n')
    with pytest.raises(InvalidArgument) as caught:
        config_mod.load(path)
    assert str(caught.value) == (
        f"config file {path}: not UTF-8 text (byte 0xff at offset 28); a config is TOML"
    )


def test_a_config_path_that_is_a_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        config_mod.load(tmp_path, required=True)
    assert str(caught.value) == f"config file {tmp_path}: cannot read: Is a directory"


def test_a_toml_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[daemon\n")
    with pytest.raises(InvalidArgument) as caught:
        config_mod.load(path)
    assert str(caught.value).startswith(f"config file {path}: ")
    assert "(at line 1, column 8)" in str(caught.value)


def test_a_sandbox_image_that_is_no_reference_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[images]\nsandbox_image = "::bad::"\n')
    with pytest.raises(InvalidArgument) as caught:
        config_mod.load(path)
    assert str(caught.value).startswith(
        f"{path}: images.sandbox_image: invalid reference '::bad::':"
    )
