"""A pod's own user namespace, pinned with the pod's network, IPC and UTS namespaces inside it.

Terms:

helper
    A short-lived child (``unshare --user --net --ipc --uts`` running a shell that waits on
    its stdin). One ``unshare(2)`` call creates all four, so the network, IPC and UTS
    namespaces are owned by the new user namespace (the kernel then lets the pod's root mount
    sysfs and mqueue in them). A thread of this multithreaded daemon cannot do it: the kernel
    refuses ``unshare(CLONE_NEWUSER)`` to a thread that shares its process's file system
    information, which is why pinning the other namespaces uses threads and this uses a child.
maps
    The daemon (root in the initial namespace, so allowed to write any mapping) writes the
    helper's ``uid_map`` and ``gid_map``; ``setgroups`` stays ``allow`` so the containers'
    processes may set their supplementary groups.
pin
    Bind-mount the helper's ``/proc/<pid>/ns/{user,net,ipc,uts}`` onto files in the pod's
    ``ns`` directory, as :mod:`runtime.sandbox.namespaces` does for the other kinds; then the
    helper is told to exit (its stdin closed) and reaped. ``lo`` is brought up and the
    hostname set from throwaway threads that join the pinned namespaces (root of the initial
    namespace has every capability in its descendants).

Unpinning is :func:`runtime.sandbox.namespaces.unpin` (it knows the ``user`` file).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from runtime import mount
from runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from runtime.model.pods import IdMapping, UserNamespace
from runtime.sandbox import namespaces as nsmod
from runtime.sandbox.namespaces import NamespaceKind, PinnedNamespaces

USER_FILE = "user"
HELPER_TIMEOUT = 10.0
_READY = b"ready\n"

_FLAGS = {NamespaceKind.NET: "--net", NamespaceKind.IPC: "--ipc", NamespaceKind.UTS: "--uts"}


def _unshare_binary() -> str:
    found = shutil.which("unshare")
    if found is None:
        raise FailedPrecondition("pods in their own user namespace need util-linux's unshare")
    return found


def _pin_from(
    pid: int, directory: Path, kinds: frozenset[NamespaceKind], userns: UserNamespace
) -> dict[str, Path]:
    proc = Path(f"/proc/{pid}")
    (proc / "uid_map").write_text("".join(m.line() for m in userns.uids))
    (proc / "gid_map").write_text("".join(m.line() for m in userns.gids))
    out: dict[str, Path] = {}
    for name in [USER_FILE, *sorted(k.value for k in kinds)]:
        target = directory / name
        target.touch(mode=0o444, exist_ok=False)
        mount.bind(proc / "ns" / name, target, recursive=False)
        out[name] = target
    return out


async def pin_user_namespaces(
    directory: Path,
    *,
    kinds: frozenset[NamespaceKind],
    userns: UserNamespace,
    hostname: str | None = None,
) -> tuple[Path, PinnedNamespaces]:
    """Create a user namespace with ``userns``' mappings and new namespaces of ``kinds``
    owned by it; pin them all in ``directory`` (created). Returns the user namespace's file
    and the other pins. On failure nothing is left behind (pins, helper)."""
    if hostname is not None and NamespaceKind.UTS not in kinds:
        raise FailedPrecondition("a hostname needs a new UTS namespace")
    raw_hostname = nsmod.validate_hostname(hostname) if hostname is not None else None

    def prepare() -> str:
        directory.mkdir(mode=0o711, parents=True, exist_ok=True)
        for name in (USER_FILE, *(k.value for k in NamespaceKind)):
            if (directory / name).exists():
                raise AlreadyExists(f"namespaces are already pinned in {directory}")
        return _unshare_binary()

    binary = await asyncio.to_thread(prepare)
    helper = await asyncio.create_subprocess_exec(
        binary,
        "--user",
        *(_FLAGS[k] for k in sorted(kinds, key=lambda k: k.value)),
        "--",
        "/bin/sh",
        "-c",
        "echo ready; read _",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert helper.stdin is not None and helper.stdout is not None and helper.stderr is not None
    try:
        try:
            line = await asyncio.wait_for(helper.stdout.readline(), HELPER_TIMEOUT)
        except TimeoutError:
            raise FailedPrecondition("the user-namespace helper did not start in time") from None
        if line != _READY:
            err = (await helper.stderr.read()).decode(errors="replace").strip()
            raise FailedPrecondition(f"cannot create the pod's user namespace: {err or line!r}")
        pins = await asyncio.to_thread(_pin_from, helper.pid, directory, kinds, userns)
        paths = {k: pins[k.value] for k in kinds}
        if NamespaceKind.NET in kinds:
            await nsmod.run_in_namespaces(
                {NamespaceKind.NET: paths[NamespaceKind.NET]}, nsmod.loopback_up
            )
        if raw_hostname is not None:
            await nsmod.run_in_namespaces(
                {NamespaceKind.UTS: paths[NamespaceKind.UTS]},
                lambda: nsmod.set_hostname(raw_hostname),
            )
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            helper.kill()
        await asyncio.shield(helper.wait())
        await asyncio.shield(nsmod.unpin(directory))
        raise
    helper.stdin.close()
    await asyncio.shield(helper.wait())
    return pins[USER_FILE], PinnedNamespaces(directory=directory, paths=paths)


@contextlib.contextmanager
def transient_user_namespace(
    uids: Sequence[IdMapping], gids: Sequence[IdMapping]
) -> Iterator[Path]:
    """A user namespace with these mappings for as long as the block runs (its nsfs file,
    for ``mount_setattr(MOUNT_ATTR_IDMAP)``, which keeps its own reference: a mount id-mapped
    through it stays so after the namespace's helper exits). Blocking. InvalidArgument when
    the kernel refuses the mappings (overlapping ranges, ...)."""
    child = subprocess.Popen(
        [_unshare_binary(), "--user", "--", "/bin/sh", "-c", "echo ready; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline() != _READY:
            raise FailedPrecondition("cannot create a user namespace for an id-mapped mount")
        proc = Path(f"/proc/{child.pid}")
        for name, mappings in (("uid_map", uids), ("gid_map", gids)):
            try:
                (proc / name).write_text("".join(m.line() for m in mappings))
            except OSError as exc:
                shown = ",".join(f"{m.container_id}:{m.host_id}:{m.length}" for m in mappings)
                raise InvalidArgument(
                    f"the kernel refuses the {name} {shown}: {exc.strerror or exc}"
                ) from None
        yield proc / "ns" / USER_FILE
    finally:
        with contextlib.suppress(OSError):
            child.stdin.close()
        child.wait()


__all__ = ["USER_FILE", "pin_user_namespaces", "transient_user_namespace"]
