"""OCI runtime spec building: the ``config.json`` runc runs a pod's containers (and its
infra container) from, plus stop-signal parsing. See :mod:`runtime.oci.spec`."""

from runtime.oci.bundle import read_spec, update_spec_resources, write_spec
from runtime.oci.mounts import SandboxFiles
from runtime.oci.resources import applicable_resources, ignored_class_annotations, resources_spec
from runtime.oci.signals import parse_signal, stop_signal
from runtime.oci.spec import build_container_spec, build_infra_spec

__all__ = [
    "SandboxFiles",
    "applicable_resources",
    "build_container_spec",
    "build_infra_spec",
    "ignored_class_annotations",
    "parse_signal",
    "read_spec",
    "resources_spec",
    "stop_signal",
    "update_spec_resources",
    "write_spec",
]
