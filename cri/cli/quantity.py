"""Kubernetes resource quantities and kubelet's CPU arithmetic. Pure.

Terms:
  quantity   a Kubernetes resource amount as written in a manifest: a decimal number with an
             optional binary (``Ki`` … ``Ei``), decimal (``n`` … ``E``) or exponent (``e3``)
             suffix, such as ``500m``, ``0.5``, ``64Mi``, ``1e3``. Never negative here.
  millicore  a thousandth of a CPU core; cpu shares and CFS quota are derived from it as kubelet
             derives them.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from runtime.errors import InvalidArgument

# kubelet's constants (pkg/kubelet/cm/helpers_linux.go)
CPU_PERIOD = 100_000
MIN_QUOTA = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")
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


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def int_value(quantity: str | int | float) -> int:
    """The whole-unit value of a quantity (bytes, a page size), rounded up as Kubernetes'
    ``Value`` does."""
    return _ceil(parse_quantity(quantity))


def milli_cpu(quantity: str | int | float) -> int:
    """Millicores of a cpu quantity, rounded up as Kubernetes' ``MilliValue`` does."""
    return _ceil(parse_quantity(quantity) * 1000)


def cpu_shares(milli: int) -> int:
    """kubelet's ``MilliCPUToShares``: 1024 shares per core, clamped to [2, 262144]."""
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * 1024 // 1000))


def cpu_quota(milli: int, period: int = CPU_PERIOD) -> int:
    """kubelet's ``MilliCPUToQuota``: the share of ``period`` the limit allows, at least 1 ms
    (0 means no limit)."""
    if milli == 0:
        return 0
    return max(MIN_QUOTA, milli * period // 1000)
