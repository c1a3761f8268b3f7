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
import re
from typing import TYPE_CHECKING, Any

import yaml

from cri.cli.manifest_validate import invalid_pod_message
from runtime.errors import InvalidArgument

if TYPE_CHECKING:
    from kubernetes.client import V1Pod


def load_pod(text: str, *, source: str = "<stdin>") -> V1Pod:
    """Parse one YAML document holding a Pod into ``V1Pod``, refusing unknown fields and
    malformed values. Raises InvalidArgument whose message starts ``SOURCE:LINE:`` where the
    fault has a place in the file, and names the field in Kubernetes terms
    (``spec.containers[0].ports[0].containerPort``)."""
    root = compose(text, source=source)
    data = yaml.safe_load(text)
    try:
        return pod_from_dict(data)
    except InvalidArgument as exc:
        raise InvalidArgument(with_location(str(exc), source=source, root=root)) from None


def compose(text: str, *, source: str) -> yaml.Node:
    """The single YAML document in ``text`` as a node tree (for line numbers)."""
    try:
        documents = [d for d in yaml.compose_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        raise InvalidArgument(f"{where}: not valid YAML: {problem}") from None
    if len(documents) != 1:
        raise InvalidArgument(
            f"{source}: holds {len(documents)} YAML documents; give exactly one Pod per file"
            if documents
            else f"{source}: is empty; give a Pod manifest"
        )
    return documents[0]


#: The first field path in a manifest error: the API server's ``Pod "x" is invalid: PATH:``
#: form or the strict decoder's ``unknown field "PATH"``.
_FIELD = re.compile(r'(?:is invalid: \[?|unknown field ")((?:metadata|spec)[\w.\[\]-]*)')
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_line(root: yaml.Node, path: str) -> int | None:
    """The 1-based line of the field ``path`` (``spec.containers[0].image``) in the document,
    or of its deepest ancestor present there; None without a mapping at the top."""
    node: yaml.Node = root
    line: int | None = None
    for name, index in _STEP.findall(path):
        if isinstance(node, yaml.MappingNode) and name:
            found = [(k, v) for k, v in node.value if getattr(k, "value", None) == name]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def with_location(message: str, *, source: str, root: yaml.Node) -> str:
    """``message`` prefixed with ``SOURCE:LINE:`` of the first field it names."""
    match = _FIELD.search(message)
    line = field_line(root, match.group(1)) if match else None
    return f"{source}:{line}: {message}" if line else f"{source}: {message}"


def _field_path(data: Any, loc: tuple[Any, ...], value: Any, prefix: str = "") -> str | None:
    """Where in the manifest a nested model's error sits: the first path whose last steps are
    ``loc`` and whose value is ``value`` (the models validate nested objects on their own, so
    their errors know only their local path)."""
    if isinstance(data, dict):
        for key, child in data.items():
            here = f"{prefix}.{key}" if prefix else str(key)
            if key == loc[0] and _follows(child, loc[1:], value):
                return here + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in loc[1:])
            found = _field_path(child, loc, value, here)
            if found:
                return found
    elif isinstance(data, list):
        for i, child in enumerate(data):
            found = _field_path(child, loc, value, f"{prefix}[{i}]")
            if found:
                return found
    return None


def _follows(data: Any, loc: tuple[Any, ...], value: Any) -> bool:
    for step in loc:
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, list) and isinstance(step, int) and step < len(data):
            data = data[step]
        else:
            return False
    return bool(data == value)


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
        errs = []
        for e in exc.errors():
            local = ".".join(str(p) for p in e["loc"])
            path = _field_path(data, tuple(e["loc"]), e.get("input")) if e["loc"] else None
            errs.append(f"{path or local}: {e['msg']} (got {e.get('input')!r})")
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
