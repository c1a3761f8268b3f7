"""Output for people (tables, progress bars) and for scripts (JSON), and the option types the
commands share. Pure: the standard library only (``cri.cli.main`` imports it at start)."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import IO, Any


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:13]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def to_yaml(data: Any) -> str:
    import yaml  # PyYAML, which the kubernetes package brings; only -o yaml needs it

    return str(yaml.safe_dump(data, sort_keys=True, default_flow_style=False)).rstrip("\n")


#: ``-o`` choices: ``table`` for people, ``wide`` a table with more columns (full ids),
#: ``json`` and ``yaml`` the same data for scripts.
FORMATS = ("table", "wide", "json", "yaml")


def add_output_option(parser: argparse.ArgumentParser, *, formats: Sequence[str] = FORMATS) -> None:
    parser.add_argument(
        "-o", "--output", choices=list(formats), default="table", help="output format"
    )


#: A year: gRPC's deadline arithmetic overflows somewhere past 1e9 seconds and then fails
#: the call at once.
_LONGEST_TIMEOUT = 365 * 86400.0


def positive_seconds(text: str) -> float:
    """A positive number of seconds, at most a year (0, less, or more than gRPC can add to the
    clock would fail every call as "did not answer in time", blaming the daemon)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= _LONGEST_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be more than 0 seconds and at most {_LONGEST_TIMEOUT:.0f}"
        )
    return value


def structured(fmt: str) -> bool:
    """Whether ``fmt`` prints data for scripts (JSON or YAML) rather than a table."""
    return fmt in ("json", "yaml")


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON or YAML."""
    return to_yaml(data) if fmt == "yaml" else to_json(data)


class ProgressView:
    """Shows a transfer's progress: one redrawn line per blob on a terminal, one line per
    phase change elsewhere (logs, pipes)."""

    def __init__(self, out: IO[str], *, tty: bool) -> None:
        self._out = out
        self._tty = tty
        self._rows: dict[str, tuple[str, int, int]] = {}
        self._drawn = 0
        self._last_phase: dict[str, str] = {}
        self._start = time.monotonic()

    def update(self, *, digest: str, phase: str, offset: int, total: int) -> None:
        key = digest or "image"
        if not self._tty:
            if self._last_phase.get(key) != phase:
                self._last_phase[key] = phase
                self._out.write(f"{short_id(digest) if digest else 'image':13}  {phase}\n")
                self._out.flush()
            return
        self._rows[key] = (phase, offset, total)
        self._draw()

    def _draw(self) -> None:
        if self._drawn:
            self._out.write(f"\x1b[{self._drawn}A")
        lines = []
        for key, (phase, offset, total) in self._rows.items():
            label = short_id(key) if key != "image" else "image"
            if total:
                filled = int(24 * min(offset, total) / total)
                bar = "[" + "=" * filled + " " * (24 - filled) + "]"
                amount = f"{human_size(offset)} / {human_size(total)}"
            else:
                bar, amount = "", ""
            lines.append(f"{label:13}  {phase:11} {bar} {amount}".rstrip())
        for line in lines:
            self._out.write("\x1b[2K" + line + "\n")
        self._drawn = len(lines)
        self._out.flush()

    def elapsed(self) -> float:
        return time.monotonic() - self._start
