"""Container Device Interface: device specs from JSON/YAML files, resolved by fully
qualified name and applied to a container's OCI spec as edits.

Terms (the CDI specification's words):

spec
    One file: ``cdiVersion``, ``kind`` (``vendor.com/class``), ``devices`` and spec-wide
    ``containerEdits``. :mod:`runtime.cdi.spec` parses and validates it.
qualified name
    ``vendor.com/class=name``: a device of a kind. Kubernetes asks for devices by it, in the
    CRI's ``CDI_devices`` field or in ``cdi.k8s.io/<anything>`` annotations (comma-separated).
container edits
    What a device (and its spec, once) does to a container: device nodes, mounts,
    environment, OCI hooks, additional groups. :mod:`runtime.cdi.edits` applies them.
registry
    The devices of every spec in the configured directories, refreshed when a file there
    changes; later directories override earlier ones (:mod:`runtime.cdi.registry`).
"""

from runtime.cdi.edits import apply_edits
from runtime.cdi.registry import DEFAULT_SPEC_DIRS, CdiRegistry, KnownDevice, requested_devices
from runtime.cdi.spec import ContainerEdits, DeviceSpec, Spec, parse_qualified_name, parse_spec

__all__ = [
    "DEFAULT_SPEC_DIRS",
    "CdiRegistry",
    "ContainerEdits",
    "DeviceSpec",
    "KnownDevice",
    "Spec",
    "apply_edits",
    "parse_qualified_name",
    "parse_spec",
    "requested_devices",
]
