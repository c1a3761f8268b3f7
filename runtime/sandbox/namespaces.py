"""Pinned pod namespaces: network, IPC and UTS namespaces kept alive by bind mounts.

Terms:

pin
    Create a namespace with ``unshare(2)`` on a throwaway thread and bind-mount that thread's
    ``/proc/thread-self/ns/<kind>`` onto an empty file (``<dir>/net``, ``<dir>/ipc``,
    ``<dir>/uts``). The thread then exits; the bind mount keeps the namespace alive, and its
    path is what runc's ``linux.namespaces[].path`` and CNI's ``CNI_NETNS`` take.
unpin
    Lazily unmount those files and remove them and the directory. Idempotent.
throwaway thread
    ``setns``/``unshare`` change only the calling thread. We do it on a fresh thread that exits
    afterwards, so no pooled thread (and never the event loop's) is left in a pod's namespace.

Python 3.11 has no ``os.unshare``/``os.setns``, so those syscalls go through libc via ctypes;
the bind mounts go through ``runtime.mount``, the one mount(2) caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import errno
import fcntl
import functools
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from runtime import mount
from runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUTS = 0x04000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceKind(enum.Enum):
    """A namespace a pod may own; the value is its ``/proc/<pid>/ns`` name."""

    NET = "net"
    IPC = "ipc"
    UTS = "uts"

    @property
    def clone_flag(self) -> int:
        """The ``CLONE_NEW*`` flag for unshare/setns."""
        return {"net": _CLONE_NEWNET, "ipc": _CLONE_NEWIPC, "uts": _CLONE_NEWUTS}[self.value]


ALL_KINDS: frozenset[NamespaceKind] = frozenset(NamespaceKind)


@dataclass(frozen=True, slots=True)
class PinnedNamespaces:
    """Where a pod's namespaces are pinned: kind → bind-mounted nsfs file."""

    directory: Path
    paths: Mapping[NamespaceKind, Path]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(path: Path, kind: NamespaceKind) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, kind.clone_flag), f"setns {kind.value} {path}")
    finally:
        os.close(fd)


def _loopback_up() -> None:
    """Bring ``lo`` up in the calling thread's network namespace (a socket belongs to the
    netns of the thread that created it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _on_throwaway_thread(fn: Callable[[], T], name: str) -> asyncio.Future[T]:
    """Run ``fn`` on a new thread that exits afterwards; its result as an asyncio future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def body() -> None:
        try:
            result = fn()
        except BaseException as e:
            loop.call_soon_threadsafe(deliver, None, e)
        else:
            loop.call_soon_threadsafe(deliver, result, None)

    threading.Thread(target=body, name=name, daemon=True).start()
    return future


def _validate_hostname(hostname: str) -> bytes:
    raw = hostname.encode()
    if not raw or len(raw) > 64 or any(c in hostname for c in "\0/ \n"):
        raise InvalidArgument(f"invalid hostname {hostname!r}: 1-64 bytes, no '/', space or NUL")
    return raw


def _pin_on_this_thread(
    directory: Path, kinds: frozenset[NamespaceKind], hostname: bytes | None
) -> dict[NamespaceKind, Path]:
    flags = 0
    for kind in kinds:
        flags |= kind.clone_flag
    _check(_libc.unshare(flags), "unshare")
    if hostname is not None:
        _check(_libc.sethostname(hostname, len(hostname)), "sethostname")
    if NamespaceKind.NET in kinds:
        _loopback_up()
    tid = threading.get_native_id()
    paths: dict[NamespaceKind, Path] = {}
    for kind in sorted(kinds, key=lambda k: k.value):
        target = directory / kind.value
        target.touch(mode=0o444, exist_ok=False)
        mount.bind(Path(f"/proc/self/task/{tid}/ns/{kind.value}"), target, recursive=False)
        paths[kind] = target
    return paths


def loopback_up() -> None:
    """Bring ``lo`` up in the calling thread's network namespace."""
    _loopback_up()


def validate_hostname(hostname: str) -> bytes:
    """``hostname`` as the bytes sethostname(2) takes; InvalidArgument if it cannot be one."""
    return _validate_hostname(hostname)


def set_hostname(raw: bytes) -> None:
    """sethostname(2) in the calling thread's UTS namespace."""
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


# the pinned files: every kind, and ``user`` (a pod's own user namespace, runtime.sandbox.userns)
_PIN_FILES = (*(kind.value for kind in NamespaceKind), "user")


def _unpin_sync(directory: Path) -> None:
    for name in _PIN_FILES:
        target = directory / name
        mount.unmount(target, detach=True, missing_ok=True)
        try:
            target.unlink()
        except FileNotFoundError:
            pass
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOTEMPTY:
            raise


async def pin_namespaces(
    directory: Path, *, kinds: frozenset[NamespaceKind], hostname: str | None = None
) -> PinnedNamespaces:
    """Create new namespaces of ``kinds`` and pin them as files in ``directory`` (created; must
    not hold pins already). A new netns has ``lo`` up and nothing else; ``hostname`` is set in a
    new UTS namespace. On failure nothing is left behind."""
    if not kinds:
        raise InvalidArgument("pin_namespaces needs at least one namespace kind")
    if hostname is not None and NamespaceKind.UTS not in kinds:
        raise InvalidArgument("a hostname needs a new UTS namespace")
    raw_hostname = _validate_hostname(hostname) if hostname is not None else None

    def prepare() -> None:
        directory.mkdir(mode=0o711, parents=True, exist_ok=True)
        for kind in NamespaceKind:
            if (directory / kind.value).exists():
                raise AlreadyExists(f"namespaces are already pinned in {directory}")

    await asyncio.to_thread(prepare)
    pinning = _on_throwaway_thread(
        lambda: _pin_on_this_thread(directory, kinds, raw_hostname), "pin-namespaces"
    )
    try:
        paths = await asyncio.shield(pinning)
    except BaseException:
        # Cancelled or failed: let the thread finish before undoing what it did.
        with contextlib.suppress(BaseException):
            await pinning
        await asyncio.shield(asyncio.to_thread(_unpin_sync, directory))
        raise
    return PinnedNamespaces(directory=directory, paths=paths)


async def unpin(directory: Path) -> None:
    """Unmount and remove the pinned namespace files in ``directory`` and the directory if it
    is then empty. Idempotent; a missing directory is fine. A namespace lives on while any
    process is still in it."""
    await asyncio.to_thread(_unpin_sync, directory)


def is_pinned(path: Path) -> bool:
    """Whether ``path`` is a bind-mounted namespace file (an nsfs mount in our mount namespace).
    Blocking (a stat)."""
    return bool(pinned_among([path]))


def pinned_among(paths: Iterable[Path]) -> set[Path]:
    """Those of ``paths`` that are bind-mounted namespace files. Blocking: one ``lstat`` per
    path. The pin files are plain empty files until a namespace is bind-mounted on them, and
    a stat of a mount point describes what is mounted there: a pin holds exactly when the
    file is on nsfs (one filesystem for every namespace). Reading ``/proc/self/mountinfo``
    instead cost ~8 ms of kernel time per read on a node with a thousand mounts, once per path
    (quadratic in pods at a restart)."""
    nsfs = os.stat("/proc/self/ns/net").st_dev
    found: set[Path] = set()
    for path in paths:
        try:
            if os.lstat(path).st_dev == nsfs:
                found.add(path)
        except OSError:  # gone, or a directory on the way is
            continue
    return found


async def run_in_namespaces(paths: Mapping[NamespaceKind, Path], fn: Callable[[], T]) -> T:
    """Run ``fn`` on a throwaway thread that has joined the given namespaces. Sockets ``fn``
    creates stay in that network namespace after the thread exits."""

    def body() -> T:
        for kind, path in paths.items():
            _setns(path, kind)
        return fn()

    return await _on_throwaway_thread(body, "in-namespaces")


def call_in_namespace(
    path: Path, kind: NamespaceKind, fn: Callable[[], T], *, timeout: float = 5.0
) -> T:
    """Blocking: run ``fn`` on a fresh thread that joined the namespace at ``path`` and exits
    afterwards (so callers on pooled threads never leave one in a pod's namespace). Raises
    what ``fn`` or the ``setns`` raised; OSError(ETIMEDOUT) when it takes over ``timeout``."""
    box: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            _setns(path, kind)
            box.append(fn())
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=body, name="in-namespace", daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    if not box:
        raise OSError(errno.ETIMEDOUT, f"reading in namespace {path} took over {timeout}s")
    return box[0]


# --- sysctls ------------------------------------------------------------------------------

_IPC_SYSCTLS = frozenset(
    {
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
    }
)


def sysctl_namespace(name: str) -> NamespaceKind:
    """Which namespace a sysctl belongs to (``net.*`` → NET; ``kernel.shm*``, ``kernel.msg*``,
    ``kernel.sem``, ``fs.mqueue.*`` → IPC). Names use dots or slashes (``net/ipv4/...``, where
    dots may then appear inside a component such as an interface name). Anything else is not
    namespaced and raises InvalidArgument."""
    dotted = name.replace("/", ".") if "/" in name else name
    if not name or ".." in dotted or any(c in name for c in "\0\n "):
        raise InvalidArgument(f"invalid sysctl name {name!r}")
    if dotted.startswith("net."):
        return NamespaceKind.NET
    if dotted in _IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
        return NamespaceKind.IPC
    raise InvalidArgument(
        f"sysctl {name!r} is not namespaced: only net.*, kernel.shm*, kernel.msg*, kernel.sem "
        "and fs.mqueue.* may be set for a pod"
    )


def _sysctl_path(name: str) -> str:
    relative = name if "/" in name else name.replace(".", "/")
    path = os.path.normpath(os.path.join("/proc/sys", relative))
    if not path.startswith("/proc/sys/"):
        raise InvalidArgument(f"invalid sysctl name {name!r}")
    return path


async def sysctls(namespaces: Mapping[NamespaceKind, Path], values: Mapping[str, str]) -> None:
    """Write namespaced sysctls inside the pod's namespaces (``namespaces`` as in
    ``PinnedNamespaces.paths``). All names are validated before anything is written;
    a sysctl the kernel does not know raises NotFound."""
    plan: dict[NamespaceKind, list[tuple[str, str, str]]] = {}
    for name, value in values.items():
        kind = sysctl_namespace(name)
        if kind not in namespaces:
            raise InvalidArgument(f"sysctl {name!r} needs the pod's own {kind.value} namespace")
        if "\n" in value or "\0" in value:
            raise InvalidArgument(f"invalid value for sysctl {name!r}")
        plan.setdefault(kind, []).append((name, _sysctl_path(name), value))

    def write(items: list[tuple[str, str, str]]) -> None:
        for name, path, value in items:
            try:
                with open(path, "w", encoding="ascii") as f:
                    f.write(value)
            except FileNotFoundError:
                raise NotFound(f"sysctl {name!r} does not exist") from None
            except OSError as e:
                raise FailedPrecondition(f"cannot set sysctl {name}={value!r}: {e}") from None

    for kind, items in plan.items():
        path = namespaces[kind]
        await run_in_namespaces({kind: path}, functools.partial(write, items))


__all__ = [
    "ALL_KINDS",
    "NamespaceKind",
    "PinnedNamespaces",
    "is_pinned",
    "loopback_up",
    "pin_namespaces",
    "pinned_among",
    "run_in_namespaces",
    "set_hostname",
    "sysctl_namespace",
    "sysctls",
    "unpin",
    "validate_hostname",
]
