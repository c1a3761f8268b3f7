"""Progress reports of pulls and pushes, for people watching (the CLI's progress display)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Phase(enum.Enum):
    RESOLVING = "resolving"
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    UNPACKING = "unpacking"
    EXISTS = "exists"
    DONE = "done"
    UPLOADING = "uploading"


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one piece of an image transfer has come. ``digest`` is empty for the image as a
    whole (resolving, done)."""

    ref: str
    phase: Phase
    digest: str = ""
    offset: int = 0
    total: int = 0


ProgressSink = Callable[[Progress], None]


def discard(_: Progress) -> None:
    """A sink for callers that do not watch progress."""
