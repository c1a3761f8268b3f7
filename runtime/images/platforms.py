"""Platforms: this machine's, parsing ``os/arch[/variant]``, and choosing from an index.

Matching follows containerd's ``platforms`` package (re-expressed): both sides are normalised
(``x86_64`` → ``amd64``; ``aarch64`` → ``arm64``; ``arm64`` variant ``v8`` is the same as no
variant; ``arm`` without a variant is ``v7``; ``amd64/v1`` is plain ``amd64``), then a platform
accepts, in order of preference, itself and what it can also run: lower ``amd64`` levels then
``386``; lower ``arm`` variants down to ``v5``; for ``arm64``, lower ``v8.x``/``v9.x`` levels then
32-bit ``arm`` from ``v8`` down.
"""

from __future__ import annotations

import platform as _host
import re

from runtime.errors import InvalidArgument, NotFound
from runtime.images.manifest import Index
from runtime.ocispec import INDEX_TYPES, MANIFEST_TYPES, Descriptor, Platform

_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5l": ("arm", "v5"),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "loongarch64": ("loong64", ""),
    "mips64": ("mips64", ""),
}
KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 "
    "solaris windows zos".split()
)
KNOWN_ARCH = frozenset(
    "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 "
    "mips64le mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm".split()
)
_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def default_platform() -> Platform:
    """This machine's platform in OCI (GOARCH) names, e.g. ``linux/amd64``, ``linux/arm64/v8``."""
    machine = _host.machine().lower()
    arch, variant = _MACHINE_TO_ARCH.get(machine, (machine, ""))
    return Platform(os="linux", architecture=arch, variant=variant)


def normalize(p: Platform) -> Platform:
    """The canonical spelling used for comparison (see the module docstring)."""
    os = (p.os or "linux").lower()
    if os == "macos":
        os = "darwin"
    arch, variant = p.architecture.lower(), p.variant.lower()
    if arch == "i386":
        arch, variant = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
        variant = "" if variant == "v1" else variant
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    elif arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
    return Platform(os=os, architecture=arch, variant=variant, os_version=p.os_version)


def parse_platform(text: str) -> Platform:
    """Parse ``os[/arch[/variant]]`` (or a lone architecture); InvalidArgument when malformed."""
    parts = text.split("/")
    if not text or len(parts) > 3 or not all(_PART.match(x) for x in parts):
        raise InvalidArgument(
            f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/arm64/v8"
        )
    if len(parts) == 1:
        word = parts[0].lower()
        if word in KNOWN_OS:
            default = default_platform()
            return normalize(Platform(word, default.architecture, default.variant))
        arch = normalize(Platform("linux", word)).architecture
        if arch in KNOWN_ARCH:
            return normalize(Platform("linux", word))
        raise InvalidArgument(f"invalid platform {text!r}: {word!r} is neither a known OS nor arch")
    os, arch = parts[0].lower(), parts[1]
    if os not in KNOWN_OS:
        raise InvalidArgument(f"invalid platform {text!r}: unknown operating system {parts[0]!r}")
    result = normalize(Platform(os, arch, parts[2] if len(parts) == 3 else ""))
    if result.architecture not in KNOWN_ARCH:
        raise InvalidArgument(f"invalid platform {text!r}: unknown architecture {arch!r}")
    return result


def _arm64_levels(variant: str) -> list[str]:
    """arm64 variants runnable on ``variant`` (normalised; ``""`` means v8), best first."""
    match = re.fullmatch(r"v(8|9)(?:\.(\d))?", variant or "v8")
    if not match:
        return [variant]
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    levels = [(major, m) for m in range(minor, -1, -1)]
    if major == 9:  # v9.n implies v8.(n+5)
        levels += [(8, m) for m in range(min(minor + 5, 9), -1, -1)]
    return [f"v{a}.{b}" if b else f"v{a}" for a, b in levels]


class Matcher:
    """Decides whether an index entry's platform can run here, and ranks the ones that can."""

    def __init__(self, platform: Platform) -> None:
        self.platform = normalize(platform)
        self._order = [normalize(p) for p in self._vector(self.platform)]

    @staticmethod
    def _vector(p: Platform) -> list[Platform]:
        os, arch, variant = p.os, p.architecture, p.variant
        if arch == "amd64":
            level = int(variant[1:]) if re.fullmatch(r"v\d", variant) else 1
            out = [Platform(os, "amd64", variant)]
            out += [Platform(os, "amd64", f"v{n}") for n in range(level - 1, 0, -1)]
            return [*out, Platform(os, "386")]
        if arch == "arm":
            level = int(variant[1:]) if re.fullmatch(r"v\d", variant) else 0
            lower = [Platform(os, "arm", f"v{n}") for n in range(level - 1, 4, -1)]
            return [Platform(os, "arm", variant), *lower]
        if arch == "arm64":
            out = [Platform(os, "arm64", v) for v in _arm64_levels(variant)]
            return out + [Platform(os, "arm", f"v{n}") for n in range(8, 4, -1)]
        return [p]

    def rank(self, candidate: Platform) -> int | None:
        """0 for the best match, larger for less preferred, None when it cannot run here."""
        c = normalize(candidate)
        for i, want in enumerate(self._order):
            if (c.os, c.architecture, c.variant) == (want.os, want.architecture, want.variant):
                return i
        return None

    def match(self, candidate: Platform) -> bool:
        return self.rank(candidate) is not None


def select_manifests(index: Index, platform: Platform) -> list[Descriptor]:
    """The index's image entries that run on ``platform``, best first (index order breaks ties).
    Entries without a platform are kept, after every entry that declares a matching one."""
    matcher = Matcher(platform)
    ranked: list[tuple[int, int, Descriptor]] = []
    for position, desc in enumerate(index.manifests):
        if desc.media_type not in MANIFEST_TYPES | INDEX_TYPES:
            continue
        rank = len(matcher._order) if desc.platform is None else matcher.rank(desc.platform)
        if rank is not None:
            ranked.append((rank, position, desc))
    return [d for _, _, d in sorted(ranked, key=lambda r: (r[0], r[1]))]


def select_manifest(index: Index, platform: Platform, *, ref: str = "") -> Descriptor:
    """The best entry for ``platform``; NotFound listing what the index offers otherwise."""
    found = select_manifests(index, platform)
    if found:
        return found[0]
    offered = sorted({str(d.platform) for d in index.manifests if d.platform is not None})
    where = f" in {ref}" if ref else ""
    raise NotFound(
        f"no manifest for platform {platform}{where}; available: {', '.join(offered) or 'none'}"
    )
