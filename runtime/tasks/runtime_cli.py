"""Running an OCI runtime's CLI (runc or a runc-compatible one such as crun).

Every call is ``<binary> --root <handler root> <subcommand> …`` as an asyncio subprocess with a
deadline; failures become :mod:`runtime.errors` with the runtime's own message, cleaned of
logrus decoration (``time=… level=error msg="…"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.errors import DeadlineExceeded, FailedPrecondition, NotFound
from runtime.tasks.interfaces import RuntimeHandler

_LOGRUS_MSG = re.compile(r'level=(?:error|fatal)\s+msg="((?:[^"\\]|\\.)*)"')
_NOT_EXIST = ("does not exist", "not exist", "No such file or directory")


@dataclass(frozen=True, slots=True)
class RuntimeResult:
    """Exit status and captured output of one runtime command."""

    returncode: int
    stdout: bytes
    stderr: bytes


def runtime_message(stderr: bytes | str) -> str:
    """The human message in a runtime's stderr: the ``msg="…"`` of logrus error lines
    (unescaped) when there are any, else the stripped text."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    found = _LOGRUS_MSG.findall(text)
    if found:
        return "; ".join(_unescape(m) for m in found)
    return text.strip()


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def is_not_found(message: str) -> bool:
    """True when the runtime's message says the container does not exist."""
    return any(s in message for s in _NOT_EXIST)


async def run_runtime(
    handler: RuntimeHandler,
    args: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109
    input: bytes | None = None,
) -> RuntimeResult:
    """Run ``handler.binary --root handler.root *args`` and capture its output. Raises
    DeadlineExceeded (after killing it) when it outlives ``timeout`` seconds."""
    try:
        proc = await asyncio.create_subprocess_exec(
            str(handler.binary),
            "--root",
            str(handler.root),
            *args,
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise FailedPrecondition(
            f"cannot run OCI runtime {handler.binary} (handler {handler.name!r}): "
            f"{exc.strerror}; fix runtime.handlers.{handler.name}.binary"
        ) from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise DeadlineExceeded(
            f"{handler.name} {' '.join(args[:1])} did not finish in {timeout}s"
        ) from None
    assert proc.returncode is not None
    return RuntimeResult(proc.returncode, out, err)


async def check_runtime(
    handler: RuntimeHandler,
    args: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109
    input: bytes | None = None,
) -> RuntimeResult:
    """Like :func:`run_runtime` but a non-zero exit raises: NotFound when the container does
    not exist, FailedPrecondition otherwise, with the runtime's message."""
    res = await run_runtime(handler, args, timeout=timeout, input=input)
    if res.returncode != 0:
        msg = runtime_message(res.stderr) or f"exit status {res.returncode}"
        what = f"{handler.name} {args[0]}: {msg}"
        if is_not_found(msg):
            raise NotFound(what)
        raise FailedPrecondition(what)
    return res
