"""Named crash points, for tests that prove every step of a lifecycle is recoverable.

``point("sandbox.run.namespaces-pinned")`` marks a step in code. When the environment variable
``PINNACE_CRASH_AT`` (set only by tests, on the daemon they start) names that point, the process
SIGKILLs itself the moment the step is reached: the deterministic equivalent of a power cut or
an OOM kill at exactly that step. Otherwise ``point`` is a membership test on an empty frozenset
read once at import, which costs nothing measurable. Names are ``<object>.<operation>.<step>``;
``POINTS`` lists every one, and a unit test checks each is placed in code exactly once.
"""

from __future__ import annotations

import os
import signal

ENV = "PINNACE_CRASH_AT"

POINTS: frozenset[str] = frozenset(
    {
        # RunPodSandbox
        "sandbox.run.dir-created",
        "sandbox.run.namespaces-pinned",
        "sandbox.run.network-attached",
        "sandbox.run.recorded",
        # StopPodSandbox
        "sandbox.stop.network-detached",
        "sandbox.stop.unpinned",
        # RemovePodSandbox
        "sandbox.remove.stopped",
        "sandbox.remove.files-removed",
        # CreateContainer (and a sandbox's infra rootfs, in a pod with its own user namespace)
        "rootfs.mount.layers-idmapped",
        "container.create.rootfs-mounted",
        "container.create.volumes-idmapped",
        "container.create.recorded",
        # StartContainer
        "container.start.task-created",
        "container.start.task-started",
        # StopContainer
        "container.stop.exited",
        # RemoveContainer
        "container.remove.task-deleted",
        "container.remove.files-removed",
        # any snapshot removal (RemoveContainer's reaches it first): the row gone, the directory
        # renamed to .removing-<id> and not deleted yet
        "snapshot.remove.trashed",
        # PullImage
        "image.pull.unpacked",
        "image.pull.recorded",
    }
)

_ARMED: frozenset[str] = frozenset(filter(None, os.environ.get(ENV, "").split(",")))


def point(name: str) -> None:
    """Crash here (SIGKILL, no cleanup of any kind) if the test armed ``name``."""
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
