"""Building ``pinnace-exec`` (``exec_helper.c``) on the node, once per source.

The binary is not shipped: it is compiled with the node's C compiler into a cache directory
under a name that carries the hash of its source and flags, so a changed source is a new
binary and an unchanged one is found again (a daemon restart costs nothing). The compile
writes a temporary file and renames it, so concurrent daemons never see half a binary.
Without a compiler, or when the build fails, there is no helper and every exec uses the OCI
runtime (``runc exec``), as before.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from runtime.tasks.fastexec import raises_nofile, runc_refusal
from runtime.tasks.interfaces import RuntimeHandler

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("exec_helper.c")
_FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong")
_COMPILE_TIMEOUT = 60.0


def helper_name(source: bytes) -> str:
    """The cached binary's file name for this source (pure)."""
    digest = hashlib.sha256(source + "\0".join(_FLAGS).encode()).hexdigest()[:16]
    return f"pinnace-exec-{digest}"


def _untrusted(path: Path) -> str | None:
    """Why ``path`` (the cache directory or binary) must not be used: not ours, or writable
    by others (what is run as root must be root's alone); None when fine or absent."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {st.st_mode & 0o7777:o})"
    return None


def build_helper(cache_dir: Path, *, compiler: str | None = None) -> Path | None:
    """The helper binary in ``cache_dir``, compiled if missing; None when it cannot be built
    (logged). Blocking: run it in a thread."""
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        log.warning("exec helper: cannot read %s: %s; execs use the OCI runtime", SOURCE, exc)
        return None
    target = cache_dir / helper_name(source)
    for path in (cache_dir, target):
        problem = _untrusted(path)
        if problem:
            log.warning("exec helper: %s %s; execs use the OCI runtime", path, problem)
            return None
    if os.access(target, os.X_OK):
        return target
    cc = compiler or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        log.info("exec helper: no C compiler (cc); execs use the OCI runtime")
        return None
    tmp = cache_dir / f".{target.name}.{os.getpid()}"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # static when the node has libc.a: no dynamic loader at each exec (~0.25 ms of CPU)
        for extra in (("-static",), ()):
            res = subprocess.run(
                [cc, *_FLAGS, *extra, "-o", str(tmp), str(SOURCE)],
                capture_output=True,
                timeout=_COMPILE_TIMEOUT,
                check=False,
            )
            if res.returncode == 0:
                break
        if res.returncode != 0:
            log.warning(
                "exec helper: %s failed (%d): %s; execs use the OCI runtime",
                cc,
                res.returncode,
                res.stderr.decode(errors="replace").strip()[-2000:],
            )
            return None
        os.chmod(tmp, 0o700)
        os.rename(tmp, target)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("exec helper: build failed: %s; execs use the OCI runtime", exc)
        return None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exec helper built: %s", target)
    return target


def runtime_version(binary: Path) -> str:
    """``<binary> --version`` output ("" when it cannot run). Blocking."""
    try:
        res = subprocess.run(
            [str(binary), "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.decode(errors="replace")


def sealed_copy(binary: Path) -> int:
    """A sealed memfd holding ``binary`` (close-on-exec; the caller owns it). The helper is
    executed from it (``/proc/self/fd/N``), so nothing the helper runs can reach a writable
    file through ``/proc/<pid>/exe``. Blocking."""
    data = binary.read_bytes()
    fd = os.memfd_create("pinnace-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(
            fd,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE,
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


#: The oldest kernel the helper runs on: it marks every descriptor close-on-exec with
#: ``close_range(..., CLOSE_RANGE_CLOEXEC)`` after the command is released, too late to fall
#: back to the OCI runtime, and that flag came in Linux 5.11.
MIN_KERNEL = (5, 11)


def kernel_supported(release: str) -> bool:
    """Whether a kernel release string (``uname -r``: "6.1.0-18-amd64", "5.10.0") is at least
    :data:`MIN_KERNEL` (pure; an unparsable one is not)."""
    parts = release.split("-", 1)[0].split(".")
    try:
        version = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        return False
    return version >= MIN_KERNEL


class ExecHelper:
    """``pinnace-exec`` for one task manager: built (or found in ``cache_dir``) in a thread
    once ``start`` is called, then held as a sealed memfd, the file that is executed; with
    what each runc handler's plans need to know about that runc (``nofile_soft_to_hard``,
    ``refusal``)."""

    def __init__(self, cache_dir: Path, handlers: Mapping[str, RuntimeHandler]) -> None:
        self._cache_dir = cache_dir
        self._handlers = dict(handlers)
        self._build: asyncio.Task[Path | None] | None = None
        self._path: Path | None = None
        self.fd = -1  # the sealed memfd (valid once ``ready`` returned a path)
        self._nofile: dict[str, bool] = {}  # by handler name
        self._refusal: dict[str, str | None] = {}  # by handler name

    def start(self) -> None:
        """Begin the build in the background (on the running loop)."""
        self._build = asyncio.create_task(asyncio.to_thread(self._make))

    async def ready(self) -> Path | None:
        """The helper once its build is over (awaited); None without one."""
        build = self._build
        if build is not None:
            if not build.done():
                await asyncio.wait([build])
            self._build = None
            if not build.cancelled() and build.exception() is None:
                self._path = build.result()
        return self._path

    def nofile_soft_to_hard(self, handler: str) -> bool:
        """Whether this handler's runc raises the command's RLIMIT_NOFILE soft limit."""
        return self._nofile.get(handler, False)

    def refusal(self, handler: str) -> str | None:
        """Why this handler's execs cannot use the helper (its runc is not 1.1.x, or not
        runc at all), or None."""
        return self._refusal.get(handler, f"handler {handler} is not a runc the helper knows")

    async def close(self) -> None:
        if self._build is not None:
            await asyncio.gather(self._build, return_exceptions=True)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _make(self) -> Path | None:
        kernel = os.uname().release
        if not kernel_supported(kernel):
            log.info(
                "exec helper: kernel %s has no close_range(CLOSE_RANGE_CLOEXEC) (5.11+); "
                "execs use the OCI runtime",
                kernel,
            )
            return None
        helper = build_helper(self._cache_dir)
        if helper is None:
            return None
        try:
            self.fd = sealed_copy(helper)
        except OSError as exc:
            log.warning("exec helper: no sealed copy (%s); execs use the OCI runtime", exc)
            return None
        for h in self._handlers.values():
            if h.binary.name == "runc":
                version = runtime_version(h.binary)
                self._nofile[h.name] = raises_nofile(version)
                self._refusal[h.name] = runc_refusal(version)
        return helper
