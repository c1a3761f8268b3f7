"""What RPC handlers may use: built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from cri.config import Config
from cri.metrics import Metrics
from runtime.images.service import ImageService


@dataclass(frozen=True, slots=True)
class Deps:
    """The services the CRI handlers call. Frozen: handlers never swap a dependency."""

    config: Config
    metrics: Metrics
    images: ImageService
    version: str
