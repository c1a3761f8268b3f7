"""Run the real ``pinnace`` console script (the one pip installed) against a test daemon, with
``PYTHONPATH`` pointing at this checkout so the code under test is what runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "pinnace"


def cli_env(socket: Path | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("PINNACE_DEBUG", None)
    if socket is not None:
        env["PINNACE_ADDRESS"] = f"unix://{socket}"
    env.update(extra or {})
    return env


def run_cli(
    socket: Path | None,
    *argv: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    """``pinnace ARGV...`` to completion, output captured as text."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *argv],
        env=cli_env(socket, env),
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def one_line_failure(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserting there is exactly one, no
    traceback, and a non-zero exit)."""
    assert result.returncode != 0, result
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pinnace: "), lines
    return lines[0]
