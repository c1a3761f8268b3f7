"""The CDI devices known on this node: every spec file in the configured directories.

Files are ``*.json`` and ``*.yaml``/``*.yml`` directly in each directory. A directory later
in the list has priority: a device it defines replaces one of the same qualified name from an
earlier directory. Two files of one directory defining the same device make that device
unusable (a conflict the vendor must fix) rather than picking one silently. A file that does
not parse or validate is skipped and reported by :meth:`CdiRegistry.errors`.

Freshness: before every lookup the registry compares the directories' listing (names, sizes,
mtimes, inodes) with what it loaded and reloads when anything changed, so a spec a device
plugin writes just before the container is created is seen. That is a few stat(2) calls,
blocking: call from a thread.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.cdi.edits import apply_edits
from runtime.cdi.spec import ContainerEdits, Spec, parse_qualified_name, parse_spec
from runtime.errors import InvalidArgument

log = logging.getLogger(__name__)

DEFAULT_SPEC_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
ANNOTATION_PREFIX = "cdi.k8s.io/"
_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """One resolvable device: its qualified name, the spec's file, the edits it brings (its
    own, and its spec's that apply once however many of the spec's devices a container
    gets)."""

    name: str
    source: str
    edits: ContainerEdits
    spec_edits: ContainerEdits
    conflict: str = ""


def requested_devices(cdi_devices: Sequence[str], annotations: Mapping[str, str]) -> list[str]:
    """The qualified names a container asks for: the CRI field's, then those of the
    ``cdi.k8s.io/`` annotations (comma-separated values, keys in sorted order), each once."""
    out: list[str] = []
    for name in cdi_devices:
        if name and name not in out:
            out.append(name)
    for key in sorted(annotations):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        for name in annotations[key].split(","):
            name = name.strip()
            if name and name not in out:
                out.append(name)
    return out


class CdiRegistry:
    """The node's CDI devices, loaded from ``spec_dirs`` (lowest priority first)."""

    def __init__(self, spec_dirs: Sequence[Path] = DEFAULT_SPEC_DIRS) -> None:
        self._dirs = tuple(spec_dirs)
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._devices: dict[str, KnownDevice] = {}
        self._errors: dict[str, str] = {}

    @property
    def spec_dirs(self) -> tuple[Path, ...]:
        return self._dirs

    def devices(self) -> list[KnownDevice]:
        """Blocking: every known device, sorted by name."""
        with self._lock:
            self._refresh()
            return [self._devices[k] for k in sorted(self._devices)]

    def errors(self) -> dict[str, str]:
        """Blocking: spec files that were skipped, with why."""
        with self._lock:
            self._refresh()
            return dict(self._errors)

    def resolve(self, names: Iterable[str]) -> list[KnownDevice]:
        """Blocking: the devices named, in order. InvalidArgument names the first that is
        malformed, unknown or in conflict."""
        names = list(names)
        for name in names:
            parse_qualified_name(name)
        with self._lock:
            self._refresh()
            found = []
            for name in names:
                device = self._devices.get(name)
                if device is None:
                    raise InvalidArgument(
                        f"CDI device {name!r} is unknown: no spec in "
                        f"{', '.join(map(str, self._dirs))} defines it"
                    )
                if device.conflict:
                    raise InvalidArgument(f"CDI device {name!r}: {device.conflict}")
                found.append(device)
            return found

    def inject(self, spec: dict[str, Any], names: Sequence[str]) -> None:
        """Blocking: apply the named devices' edits (and each of their specs' edits once) to
        the OCI ``spec``. InvalidArgument for an unknown device, nothing applied then."""
        if not names:
            return
        devices = self.resolve(names)
        done_specs: set[str] = set()
        for device in devices:
            if device.source not in done_specs:
                done_specs.add(device.source)
                apply_edits(spec, device.spec_edits, device=device.name)
            apply_edits(spec, device.edits, device=device.name)

    # ---- loading --------------------------------------------------------------------------

    def _listing(self) -> list[tuple[int, Path]]:
        files: list[tuple[int, Path]] = []
        for priority, directory in enumerate(self._dirs):
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                log.warning("CDI spec directory %s cannot be read: %s", directory, exc)
                continue
            for entry in entries:
                if entry.name.endswith(_SUFFIXES) and entry.is_file():
                    files.append((priority, Path(entry.path)))
        return files

    def _refresh(self) -> None:
        files = self._listing()
        signature = []
        for priority, path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            signature.append((priority, str(path), st.st_ino, st.st_size, st.st_mtime_ns))
        sig = tuple(signature)
        if sig == self._signature:
            return
        self._signature = sig
        self._load(files)

    def _load(self, files: list[tuple[int, Path]]) -> None:
        devices: dict[str, KnownDevice] = {}
        priorities: dict[str, int] = {}
        errors: dict[str, str] = {}
        for priority, path in files:
            try:
                spec = _read(path)
            except (OSError, ValueError, InvalidArgument) as exc:
                errors[str(path)] = str(exc)
                log.warning("CDI spec %s skipped: %s", path, exc)
                continue
            for dev in spec.devices:
                name = f"{spec.kind}={dev.name}"
                known = KnownDevice(
                    name=name, source=str(path), edits=dev.edits, spec_edits=spec.edits
                )
                previous = devices.get(name)
                if previous is not None and priorities[name] == priority:
                    known = KnownDevice(
                        name=name,
                        source=str(path),
                        edits=dev.edits,
                        spec_edits=spec.edits,
                        conflict=f"defined by both {previous.source} and {path}",
                    )
                devices[name] = known
                priorities[name] = priority
        self._devices = devices
        self._errors = errors


def _read(path: Path) -> Spec:
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        # imported for the first YAML spec only: most nodes have none, and PyYAML was ~10 ms
        # of every daemon start
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(str(exc)) from None
    return parse_spec(data, source=str(path))
