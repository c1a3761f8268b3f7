"""The List sampler of the churn (tests/support/churn.py), run in a process of its own as the
kubelet is: ``python -m tests.support.list_sampler SOCKET INTERVAL`` times ListPodSandbox and
ListContainers every INTERVAL seconds until its standard input is closed, then prints every
sample (one of the two calls, client-side, in ms) as a JSON list. In the churn's own process
the samples would also measure that process's GIL, shared with the churning clients."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from cri.api.runtime.v1 import api_pb2 as pb
from tests.support.daemon import cri_clients


def sample(socket: Path, interval: float, stop: threading.Event) -> list[float]:
    runtime, _ = cri_clients(socket)
    samples: list[float] = []
    while not stop.is_set():
        for call, request in (
            (runtime.ListPodSandbox, pb.ListPodSandboxRequest()),
            (runtime.ListContainers, pb.ListContainersRequest()),
        ):
            started = time.perf_counter()
            call(request, timeout=10)
            samples.append((time.perf_counter() - started) * 1000)
        stop.wait(interval)  # the polling period itself, not a wait for a fact
    return samples


def main(argv: list[str]) -> int:
    stop = threading.Event()

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    json.dump(sample(Path(argv[1]), float(argv[2]), stop), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
