"""The writable-layer walker process: ``python -m runtime.stats.walker``.

Walking millions of directory entries is CPU work in Python, and a thread doing it in the
daemon holds the interpreter lock the event loop and the stats RPCs' cgroup reads need: the
reads of ListContainerStats were measured 4x slower beside a walking thread. So the daemon
runs the walks in this child process (at a lower CPU priority), which keeps the resumable
walks of :class:`runtime.stats.layers.LayerUsageTable` between refreshes.

Protocol, one JSON object per line: the daemon writes ``{"budget": N, "layers": {id: dir}}``,
the walker runs one refresh and answers ``{"usage": {id: [bytes, inodes, timestamp_ns]}}``
(every completed measurement it holds). The walker exits when its standard input closes (the
daemon stopped or died).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from runtime.stats.layers import LayerUsageTable


def answer(table: LayerUsageTable, line: str) -> str:
    """One refresh for one request line; returns the answer line."""
    request = json.loads(line)
    layers = {str(cid): Path(path) for cid, path in request["layers"].items()}
    table.refresh(layers, file_budget=int(request["budget"]))
    usage = {cid: [u.used_bytes, u.inodes, u.timestamp_ns] for cid, u in table.published().items()}
    return json.dumps({"usage": usage}) + "\n"


def serve(requests: Iterable[str], out: IO[str]) -> None:
    table = LayerUsageTable()
    for line in requests:
        if line.strip():
            out.write(answer(table, line))
            out.flush()


if __name__ == "__main__":
    try:
        os.nice(10)  # accounting yields to containers and to the daemon
    except OSError:
        pass
    serve(sys.stdin, sys.stdout)
