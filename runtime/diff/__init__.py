"""Applying layers: compression detection, streaming decompression, byte plumbing, tar apply."""

from runtime.diff.apply import ApplyStats, apply_layer
from runtime.diff.compression import Compression, Readable, decompressing_reader, detect
from runtime.diff.stream import ByteFeed, HashingReader

__all__ = [
    "ApplyStats",
    "ByteFeed",
    "Compression",
    "HashingReader",
    "Readable",
    "apply_layer",
    "decompressing_reader",
    "detect",
]
