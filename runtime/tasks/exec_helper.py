"""Building ``pinnace-exec`` (``exec_helper.c``) on the node, once per source.

The binary is not shipped: it is compiled with the node's C compiler into a cache directory
under a name that carries the hash of its source and flags, so a changed source is a new
binary and an unchanged one is found again (a daemon restart costs nothing). The compile
writes a temporary file and renames it, so concurrent daemons never see half a binary.
Without a compiler, or when the build fails, there is no helper and every exec uses the OCI
runtime (``runc exec``), as before.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("exec_helper.c")
_FLAGS = ("-O2", "-Wall", "-Wextra", "-Werror", "-D_FORTIFY_SOURCE=2", "-fstack-protector-strong")
_COMPILE_TIMEOUT = 60.0


def helper_name(source: bytes) -> str:
    """The cached binary's file name for this source (pure)."""
    digest = hashlib.sha256(source + "\0".join(_FLAGS).encode()).hexdigest()[:16]
    return f"pinnace-exec-{digest}"


def build_helper(cache_dir: Path, *, compiler: str | None = None) -> Path | None:
    """The helper binary in ``cache_dir``, compiled if missing; None when it cannot be built
    (logged). Blocking: run it in a thread."""
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        log.warning("exec helper: cannot read %s: %s; execs use the OCI runtime", SOURCE, exc)
        return None
    target = cache_dir / helper_name(source)
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
