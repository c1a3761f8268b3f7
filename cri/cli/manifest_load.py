"""Loading a Kubernetes Pod manifest into the ``kubernetes`` package's models, strictly. Pure.

Terms:
  manifest   one YAML document of ``apiVersion: v1, kind: Pod``, parsed into the ``kubernetes``
             package's ``V1Pod`` model. Unknown fields are refused, as the API server does under
             strict field validation (kubectl's default).

Loading checks shape only (types, required names, unknown fields); what the values mean is
checked by :func:`cri.cli.manifest_validate.validate`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import yaml

from cri.cli.manifest_validate import invalid_pod_message
from runtime.errors import InvalidArgument

if TYPE_CHECKING:
    from kubernetes.client import V1Pod


def load_pod(text: str) -> V1Pod:
    """Parse one YAML document holding a Pod into ``V1Pod``, refusing unknown fields and
    malformed values. Raises InvalidArgument naming the field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"not valid YAML: {exc}") from None
    return pod_from_dict(data)


def pod_from_dict(data: Any) -> V1Pod:
    """A ``V1Pod`` from the manifest's dict (camelCase keys, as in YAML)."""
    if not isinstance(data, dict):
        raise InvalidArgument("a Pod manifest must be a YAML mapping")
    if data.get("apiVersion") != "v1" or data.get("kind") != "Pod":
        raise InvalidArgument(
            f"expected apiVersion: v1, kind: Pod; got apiVersion: {data.get('apiVersion')!r},"
            f" kind: {data.get('kind')!r}"
        )
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise InvalidArgument("spec: Required value")
    # Required fields the model would reject without saying where they are.
    errs = []
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            if not isinstance(container, dict) or not isinstance(container.get("name"), str):
                errs.append(f"spec.{key}[{i}].name: Required value")
    if errs:
        raise InvalidArgument(invalid_pod_message(_name_of(data), errs))
    data = _quantities_as_strings(data)
    from kubernetes.client import V1Pod  # the models take ~0.5 s to import; only play needs them
    from pydantic import ValidationError

    try:
        # The models' public from_dict is the deserializer; no API server or private
        # ApiClient method is involved.
        pod = V1Pod.from_dict(data)
    except ValidationError as exc:
        errs = [
            f"{exc.title}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        ]
        raise InvalidArgument(invalid_pod_message(_name_of(data), errs)) from None
    assert pod is not None
    unknown = _unknown_fields(data, pod, "")
    if unknown:
        raise InvalidArgument(
            "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
        )
    return pod


def _quantities_as_strings(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the manifest with YAML numbers given as quantities (``cpu: 1``, ``memory:
    134217728``, ``sizeLimit: 1e9``) turned into strings: the API server takes both, the
    models only strings."""
    data = copy.deepcopy(data)
    spec = data["spec"]

    def fix(mapping: Any, *keys: str) -> None:
        for key in keys:
            values = mapping.get(key) if isinstance(mapping, dict) else None
            if isinstance(values, dict):
                for name, value in values.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        values[name] = str(value)

    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            fix(container.get("resources"), "limits", "requests")
    for volume in spec.get("volumes") or []:
        fix(volume, "emptyDir")
    fix(spec, "overhead")
    return data


def _name_of(data: dict[str, Any]) -> str:
    meta = data.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""


def _unknown_fields(data: Any, model: Any, path: str) -> list[str]:
    """Keys of ``data`` the model does not define, as dotted paths; ``from_dict`` drops them
    silently (and also accepts snake_case names, which the API server does not)."""
    attribute_map = getattr(type(model), "attribute_map", None)
    if not isinstance(data, dict) or attribute_map is None:
        return []
    known = {json_key: attr for attr, json_key in attribute_map.items()}
    out: list[str] = []
    for key, value in data.items():
        attr = known.get(key)
        if attr is None:
            out.append(f"{path}{key}")
            continue
        child = getattr(model, attr, None)
        if isinstance(value, dict):
            out.extend(_unknown_fields(value, child, f"{path}{key}."))
        elif isinstance(value, list) and isinstance(child, list):
            for i, (item, sub) in enumerate(zip(value, child, strict=False)):
                out.extend(_unknown_fields(item, sub, f"{path}{key}[{i}]."))
    return out
