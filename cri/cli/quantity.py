"""Kubernetes resource quantities and kubelet's CPU arithmetic. Pure. The parser itself is
:func:`runtime.units.parse_quantity` (one for the tree); this module adds kubelet's rounding.

Terms:
  quantity   a Kubernetes resource amount as written in a manifest: a decimal number with an
             optional binary (``Ki`` … ``Ei``), decimal (``n`` … ``E``) or exponent (``e3``)
             suffix, such as ``500m``, ``0.5``, ``64Mi``, ``1e3``. Never negative here.
  millicore  a thousandth of a CPU core; cpu shares and CFS quota are derived from it as kubelet
             derives them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from runtime.units import parse_quantity

# kubelet's constants (pkg/kubelet/cm/helpers_linux.go)
CPU_PERIOD = 100_000
MIN_QUOTA = 1_000
MIN_SHARES = 2
MAX_SHARES = 262_144

__all__ = ["cpu_quota", "cpu_shares", "int_value", "milli_cpu", "parse_quantity"]


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
