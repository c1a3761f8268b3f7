"""The units people write in configs, manifests and annotations: Kubernetes resource quantities
and durations. Pure; bad input raises :class:`runtime.errors.InvalidArgument`. The one parser of
each for the whole tree (the CLI's manifests, pod annotations, pinnaced's config, hosts.toml).

Terms:
  quantity   a Kubernetes resource amount (``resource.Quantity``): a decimal number with an
             optional binary (``Ki`` … ``Ei``), decimal (``n`` … ``E``) or exponent (``e3``)
             suffix, such as ``500m``, ``0.5``, ``64Mi``, ``1e3``. Never negative here.
  duration   Go's ``time.ParseDuration`` syntax: one or more ``<number><unit>`` parts with units
             ``ns``, ``us`` (``µs``), ``ms``, ``s``, ``m``, ``h`` (``"1m30s"``, ``"250ms"``);
             blanks between parts are allowed, and where the caller allows it a bare number is
             seconds (``"5"``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from runtime.errors import InvalidArgument

QUANTITY_PATTERN = r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIX = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{
        s: Decimal(10) ** e
        for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)
    },
    "": Decimal(1),
}


def parse_quantity(text: str | int | float) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``0.5``, ``64Mi``, ``1e3``, ``2G``) as a number.
    Raises InvalidArgument for anything else, negative values included."""
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise InvalidArgument(f"quantities must match the regular expression {_QUANTITY.pattern}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise InvalidArgument(f"{text!r} is not a number") from None
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        value *= Decimal(10) ** int(suffix[1:])
    else:
        value *= _SUFFIX[suffix]
    if value < 0:
        raise InvalidArgument("must be greater than or equal to 0")
    return value


_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|µs|ms|s|m|h)\s*")
_BARE_SECONDS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, *, bare_seconds: bool = True) -> float:
    """Seconds from a duration string (``"1m30s"``, ``"250ms"``, ``"5m"``; with
    ``bare_seconds`` also ``"5"``). Raises InvalidArgument naming the text otherwise."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{text!r} is not a duration; write e.g. '5m', '30s' or '250ms'")
    bare = _BARE_SECONDS.match(text)
    if bare and bare_seconds:
        return float(bare.group(1))
    total, pos, parts = 0.0, 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
        parts += 1
    if parts == 0 or pos != len(text):
        raise InvalidArgument(f"{text!r} is not a duration; write e.g. '5m', '30s' or '250ms'")
    return total
