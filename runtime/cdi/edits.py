"""Applying CDI container edits to an OCI runtime spec (a ``config.json`` dict).

Blocking: a device node whose type or numbers the spec leaves out is stat(2)ed on the host
(its ``hostPath``, else its ``path``), the way the CDI reference implementation fills it in.

How each edit lands (the CDI implementation's semantics):

* ``env``: ``KEY=VALUE`` replaces an existing ``KEY`` in ``process.env``, else is appended.
* device nodes: a ``linux.devices`` entry (replacing one at the same path) and, except for
  FIFOs, a device cgroup allow rule with the node's permissions (``rwm`` by default).
* mounts: replace a mount at the same destination, else are appended; mounts are then
  ordered so a parent directory is mounted before what is mounted inside it.
* hooks: appended to ``hooks.<hookName>``.
* ``additionalGids``: added to ``process.user.additionalGids``.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from runtime.cdi.spec import ContainerEdits, DeviceNode
from runtime.errors import InvalidArgument


def apply_edits(spec: dict[str, Any], edits: ContainerEdits, *, device: str = "") -> None:
    """Apply ``edits`` to ``spec`` in place. ``device`` names the CDI device in messages."""
    process: dict[str, Any] = spec.setdefault("process", {})
    if edits.env:
        env: list[str] = list(process.get("env", []))
        for assignment in edits.env:
            key = assignment.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key]
            env.append(assignment)
        process["env"] = env
    linux: dict[str, Any] = spec.setdefault("linux", {})
    for node in edits.device_nodes:
        entry = _device_entry(node, device)
        devices = [d for d in linux.get("devices", []) if d.get("path") != entry["path"]]
        devices.append(entry)
        linux["devices"] = devices
        if entry["type"] != "p":
            rule = {
                "allow": True,
                "type": entry["type"],
                "major": entry["major"],
                "minor": entry["minor"],
                "access": node.permissions or "rwm",
            }
            linux.setdefault("resources", {}).setdefault("devices", []).append(rule)
    if edits.mounts:
        mounts = list(spec.get("mounts", []))
        for m in edits.mounts:
            mounts = [x for x in mounts if x.get("destination") != m.container_path]
            options = list(m.options)
            mount_type = m.type or "bind"
            if mount_type == "bind" and not {"bind", "rbind"} & set(options):
                options.append("rbind")
            mounts.append(
                {
                    "destination": m.container_path,
                    "type": mount_type,
                    "source": m.host_path,
                    "options": options,
                }
            )
        # Stable: mounts of equal depth keep their order; a parent goes before its children.
        mounts.sort(key=lambda x: len([p for p in x.get("destination", "").split("/") if p]))
        spec["mounts"] = mounts
    if edits.hooks:
        hooks = spec.setdefault("hooks", {})
        for h in edits.hooks:
            hook: dict[str, Any] = {"path": h.path}
            if h.args:
                hook["args"] = list(h.args)
            if h.env:
                hook["env"] = list(h.env)
            if h.timeout is not None:
                hook["timeout"] = h.timeout
            hooks.setdefault(h.hook_name, []).append(hook)
    if edits.additional_gids:
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        gids = list(user.get("additionalGids", []))
        gids += [g for g in edits.additional_gids if g not in gids]
        user["additionalGids"] = gids


def _device_entry(node: DeviceNode, device: str) -> dict[str, Any]:
    kind, major, minor = node.type, node.major, node.minor
    mode, uid, gid = node.file_mode, node.uid, node.gid
    if not kind or (kind in ("b", "c", "u") and (major is None or minor is None)):
        host = node.host_path or node.path
        try:
            st = os.stat(host)
        except OSError as exc:
            raise InvalidArgument(
                f"CDI device {device}: device node {host} cannot be read on the host: "
                f"{exc.strerror}"
            ) from None
        if stat.S_ISCHR(st.st_mode):
            found = "c"
        elif stat.S_ISBLK(st.st_mode):
            found = "b"
        elif stat.S_ISFIFO(st.st_mode):
            found = "p"
        else:
            raise InvalidArgument(f"CDI device {device}: {host} is not a device node")
        kind = kind or found
        if kind != "p":
            major = os.major(st.st_rdev) if major is None else major
            minor = os.minor(st.st_rdev) if minor is None else minor
        mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    if kind == "u":
        kind = "c"  # unbuffered character device: the OCI spec's "u" is a "c" for runc
    entry: dict[str, Any] = {"path": node.path, "type": kind}
    if kind != "p":
        entry["major"] = major
        entry["minor"] = minor
    if mode is not None:
        entry["fileMode"] = mode
    if uid is not None:
        entry["uid"] = uid
    if gid is not None:
        entry["gid"] = gid
    return entry
