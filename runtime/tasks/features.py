"""What an OCI runtime says it can do: ``<binary> features`` (the runtime-spec's
``features.md`` document), read once per handler at start.

Only facts the runtime states are trusted: a runtime without a ``features`` command (crun 1.8)
or whose output cannot be read is taken to support nothing optional, so pinnace never reports
or uses a capability it merely assumes.

The facts pinnace uses: ``mountOptions`` (``rro``, recursive read-only mounts; ``idmap`` /
``ridmap``, id-mapped mounts) and ``linux.namespaces``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0

# What pinnace itself honours, beside what the OCI runtime states: the one place to switch a
# kubelet-visible feature on, in the change that implements it (Status reports these).
# Pod user namespaces (``userns_options`` mode POD): pinnace makes the user namespace and the
# id-mapped root file systems itself (runtime/sandbox/userns.py, runtime/mount/idmap.py), so
# it needs from the runtime only that it joins a user namespace by path, and from the host
# id-mapped mounts where the layers live (probed at start: ``host_idmapped_mounts``).
PINNACE_USER_NAMESPACES = True
# RuntimeFeatures.supplemental_groups_policy (node-wide): ``Strict`` honoured (only the
# listed groups, not the image's /etc/group memberships; runtime/oci/user.py).
PINNACE_SUPPLEMENTAL_GROUPS_POLICY = True


@dataclass(frozen=True, slots=True)
class HandlerFeatures:
    """An OCI runtime's stated features; ``known`` is False when it stated none."""

    mount_options: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    known: bool = False
    # not the runtime's: whether this host can id-map the snapshotter's layers (the daemon
    # probes it once at start and sets it on every handler's features)
    host_idmapped_mounts: bool = False
    # why not, when the host cannot (the snapshotter, the probe's failure), for refusals
    host_idmapped_why: str = ""

    @property
    def recursive_read_only(self) -> bool:
        """Mount option ``rro``: a bind mount read-only with every mount below it."""
        return "rro" in self.mount_options

    @property
    def idmapped_mounts(self) -> bool:
        """Mount option ``idmap``: the runtime makes id-mapped bind mounts itself."""
        return "idmap" in self.mount_options

    @property
    def user_namespaces(self) -> bool:
        """Pods in their own user namespace: pinnace implements it, the runtime states the
        ``user`` namespace (a runtime that states nothing, such as crun 1.8, is not assumed
        to), and the host can id-map the layers (pinnace id-maps them; the runtime need not)."""
        return PINNACE_USER_NAMESPACES and "user" in self.namespaces and self.host_idmapped_mounts

    @property
    def user_namespaces_unavailable(self) -> str:
        """Why :attr:`user_namespaces` is False ("" when it is True), for a refusal."""
        if self.user_namespaces:
            return ""
        if "user" not in self.namespaces:
            return "its OCI runtime does not state the user namespace in its `features`"
        return self.host_idmapped_why or "this host cannot id-map the image layers"


def parse_features(document: bytes) -> HandlerFeatures:
    """The features in ``<binary> features`` output; ValueError when it is not that JSON."""
    data = json.loads(document)
    if not isinstance(data, dict):
        raise ValueError("features output is not a JSON object")
    options = data.get("mountOptions") or []
    linux = data.get("linux") or {}
    namespaces = (linux.get("namespaces") or []) if isinstance(linux, dict) else []
    if not isinstance(options, list) or not isinstance(namespaces, list):
        raise ValueError("features output has malformed lists")
    return HandlerFeatures(
        mount_options=frozenset(str(o) for o in options),
        namespaces=frozenset(str(n) for n in namespaces),
        known=True,
    )


async def probe_features(binary: Path | str, *, timeout: float = PROBE_TIMEOUT) -> HandlerFeatures:  # noqa: ASYNC109
    """Run ``binary features``; empty features (logged) when it fails, is slow or says
    something unreadable."""
    try:
        proc = await asyncio.create_subprocess_exec(
            str(binary),
            "features",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        log.warning("runtime %s: cannot run `features`: %s", binary, exc)
        return HandlerFeatures()
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        log.warning("runtime %s: `features` took over %.0fs; assuming none", binary, timeout)
        return HandlerFeatures()
    if proc.returncode != 0:
        log.info(
            "runtime %s states no features (%s); optional ones are off",
            binary,
            err.decode(errors="replace").strip() or f"exit {proc.returncode}",
        )
        return HandlerFeatures()
    try:
        return parse_features(out)
    except ValueError as exc:
        log.warning("runtime %s: unreadable `features` output: %s", binary, exc)
        return HandlerFeatures()
