"""The host directories ``pinnace play`` makes for a pod, and their removal.

``play`` does on its own what kubelet does for a pod: it makes the pod's log directory
(``<log root>/<namespace>_<name>_<uid>``, which conmon writes into) and its emptyDir volumes
(``<play root>/<uid>/<volume>``). These are the CLI's directories, as ``/var/lib/kubelet`` is
kubelet's; the daemon's own root and state directories are never touched. A directory is
removed only when it lies directly under one of the roots this invocation was given and is
named after the pod's identity, whatever the pod's annotations claim.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cri.api.runtime.v1 import api_pb2 as pb
from cri.cli import manifest


@dataclass(frozen=True, slots=True)
class PlayRoots:
    """Where play makes pod log directories and emptyDir volumes."""

    log_root: str = manifest.DEFAULT_LOG_ROOT
    play_root: str = manifest.DEFAULT_PLAY_ROOT

    @classmethod
    def from_env(cls) -> PlayRoots:
        return cls(
            log_root=os.environ.get("PINNACE_LOG_ROOT", manifest.DEFAULT_LOG_ROOT),
            play_root=os.environ.get("PINNACE_PLAY_ROOT", manifest.DEFAULT_PLAY_ROOT),
        )


def owned(namespace: str, name: str, uid: str, roots: PlayRoots) -> list[Path]:
    """The directories play makes for the pod with this identity: each one directly under its
    root. An identity that would name anything else (a ``/`` in it, ``.`` or ``..``; any CRI
    client can create a pod with such metadata) owns nothing, so nothing is removed for it."""
    if not uid:
        return []
    found = []
    for root, leaf in (
        (roots.log_root, f"{namespace}_{name}_{uid}"),
        (roots.play_root, uid),
    ):
        if "/" in leaf or "\0" in leaf or leaf in (".", ".."):
            continue
        base = Path(os.path.abspath(root))
        found.append(base / leaf)
    return found


def remove_dirs(paths: list[Path]) -> list[str]:
    """Remove the directories that exist; returns those removed."""
    removed = []
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def remove(status: pb.PodSandboxStatus, roots: PlayRoots) -> list[str]:
    """Remove what play made for a removed pod: the directories its annotations name that are
    also the ones play derives from its identity under ``roots``."""
    meta = status.metadata
    expected = owned(meta.namespace, meta.name, meta.uid, roots)
    annotated = {
        os.path.abspath(value)
        for key in (manifest.LOG_DIRECTORY_ANNOTATION, manifest.VOLUME_DIRECTORY_ANNOTATION)
        if (value := status.annotations.get(key, ""))
    }
    return remove_dirs([p for p in expected if str(p) in annotated])
