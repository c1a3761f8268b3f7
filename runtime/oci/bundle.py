"""The bundle's ``config.json`` on disk: written atomically, and its resources updated for a
container that has not become a task yet. Blocking: call through ``asyncio.to_thread``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runtime.model.pods import Resources
from runtime.oci.resources import resources_spec


def write_spec(path: Path, spec: dict[str, Any]) -> None:
    """Write ``spec`` as ``path`` so that a reader sees the old file or the new one whole, also
    after the daemon is killed. No fsync: bundles live in the state directory, which does not
    outlive a boot (see ``runtime/tasks/statefile.py``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(spec, handle, separators=(",", ":"))
    os.replace(tmp, path)


def read_spec(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    assert isinstance(spec, dict)
    return spec


def update_spec_resources(path: Path, resources: Resources, *, cgroup_v2: bool) -> None:
    """Replace the cpu, memory, hugepage and unified limits in the bundle at ``path``."""
    spec = read_spec(path)
    linux = spec.setdefault("linux", {})
    current = linux.setdefault("resources", {})
    for key in ("cpu", "memory", "hugepageLimits", "unified"):
        current.pop(key, None)
    current.update(resources_spec(resources, cgroup_v2=cgroup_v2))
    write_spec(path, spec)
