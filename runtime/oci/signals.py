"""Stop signals by name or number, as images (``StopSignal``) and the CRI spell them.

Accepted: a number (``9``), a name with or without ``SIG`` in any case (``SIGTERM``,
``term``), and the real-time signals ``RTMIN``, ``RTMIN+n``, ``RTMAX-n``, ``RTMAX``.
"""

from __future__ import annotations

import signal

from runtime.errors import InvalidArgument
from runtime.ocispec import ImageConfig

_RTMIN = int(signal.SIGRTMIN)
_RTMAX = int(signal.SIGRTMAX)


def parse_signal(value: str) -> int:
    """The signal number ``value`` names; InvalidArgument when it names none."""
    text = value.strip()
    if text.isdigit():
        number = int(text)
        if 1 <= number <= _RTMAX:
            return number
        raise InvalidArgument(f"invalid signal {value!r}: out of range")
    name = text.upper().removeprefix("SIG")
    realtime = _realtime(name)
    if realtime is not None:
        return realtime
    try:
        return int(signal.Signals["SIG" + name])
    except KeyError:
        raise InvalidArgument(f"invalid signal {value!r}") from None


def stop_signal(image: ImageConfig, override: str = "") -> int:
    """The signal that stops a container: ``override`` (the CRI's), else the image's
    ``StopSignal``, else SIGTERM."""
    chosen = override or image.stop_signal
    return parse_signal(chosen) if chosen else int(signal.SIGTERM)


def _realtime(name: str) -> int | None:
    for base, number, sign in (("RTMIN", _RTMIN, 1), ("RTMAX", _RTMAX, -1)):
        if not name.startswith(base):
            continue
        rest = name[len(base) :]
        if not rest:
            return number
        op = "+" if sign > 0 else "-"
        if rest[0] != op or not rest[1:].isdigit():
            raise InvalidArgument(f"invalid signal {name!r}")
        result = number + sign * int(rest[1:])
        if not _RTMIN <= result <= _RTMAX:
            raise InvalidArgument(f"invalid signal {name!r}: out of range")
        return result
    return None
