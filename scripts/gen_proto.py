#!/usr/bin/env python3
"""Generate, check and compare pinnace's protobuf/gRPC Python code.

Terms:

* **source proto**: a ``.proto`` file under ``proto/``, named by its path relative to ``proto/``
  (``runtime/v1/api.proto``). That path is also how one source proto imports another.
* **target package**: the Python package its generated modules live in (``cri/api/runtime/v1``),
  giving ``from cri.api.runtime.v1 import api_pb2, api_pb2_grpc``.
* **generated files**: ``<stem>_pb2.py``, ``<stem>_pb2.pyi`` and ``<stem>_pb2_grpc.py`` in the
  target package. They are checked in and never edited by hand.

protoc names Python modules after the proto's path on its include path. Compiling
``runtime/v1/api.proto`` straight from ``proto/`` would produce ``import runtime.v1.api_pb2``,
which collides with pinnace's own top-level ``runtime`` package. So every source proto is first
copied into a temporary tree at its target package path (``cri/api/runtime/v1/api.proto``),
with ``import "<source path>"`` lines between our own protos rewritten to the new paths, and
protoc runs on that tree. The generated imports, module names and descriptor file names are then
all ``cri.api.*`` without touching the generated code.

Usage::

    python scripts/gen_proto.py            # regenerate the checked-in files
    python scripts/gen_proto.py --check    # exit 1 with a diff summary if they drift
    python scripts/gen_proto.py --compare OURS.proto THEIRS.proto
                                           # structural wire comparison of two protos

``--compare`` is the dev-time check that ``proto/runtime/v1/api.proto`` is wire-identical to an
upstream cri-api ``api.proto`` (gogoproto imports and options are stripped from both first).
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)
from google.protobuf.message import Message

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "proto"


@dataclass(frozen=True, slots=True)
class ProtoSpec:
    """One source proto and the target package its generated modules go to.

    ``source`` is relative to ``proto/``; ``package_dir`` is relative to the repository root.
    """

    source: str
    package_dir: str

    @property
    def stem(self) -> str:
        return Path(self.source).stem

    @property
    def relocated(self) -> str:
        """The proto's path inside the temporary tree, which names its Python module."""
        return f"{self.package_dir}/{Path(self.source).name}"

    def generated_names(self) -> tuple[str, ...]:
        return (f"{self.stem}_pb2.py", f"{self.stem}_pb2.pyi", f"{self.stem}_pb2_grpc.py")


# Add a proto here (one line) and rerun the script.
PROTOS: tuple[ProtoSpec, ...] = (
    ProtoSpec(source="runtime/v1/api.proto", package_dir="cri/api/runtime/v1"),
    ProtoSpec(source="pinnace/images/v1/images.proto", package_dir="cri/api/pinnace/images/v1"),
    ProtoSpec(source="pinnace/events/v1/events.proto", package_dir="cri/api/pinnace/events/v1"),
    ProtoSpec(source="nri/v1alpha1/api.proto", package_dir="cri/api/nri/v1alpha1"),
    ProtoSpec(source="nri/ttrpc/ttrpc.proto", package_dir="cri/api/nri/ttrpc"),
)

# Each directory from cri/api down to a target package must be a package.
API_ROOT = "cri/api"

_IMPORT_RE = re.compile(r'^(\s*import\s+(?:public\s+|weak\s+)?")([^"]+)(";)', re.MULTILINE)
_GOGO_IMPORT_RE = re.compile(r'^\s*import\s+"[^"]*gogo\.proto";\s*$', re.MULTILINE)
_GOGO_FILE_OPTION_RE = re.compile(
    r"^\s*option\s+\(gogoproto\.[^)]*\)\s*=\s*[^;]*;\s*$", re.MULTILINE
)
_GOGO_FIELD_OPTION_RE = re.compile(r"\(gogoproto\.[^)]*\)\s*=\s*[^,\]]+")


def run_protoc(args: Sequence[str]) -> None:
    """Run ``python -m grpc_tools.protoc`` (which adds the well-known types to the path).

    Raises subprocess.CalledProcessError, with protoc's complaint in ``stderr``, when protoc
    rejects a proto.
    """
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", *args],
        capture_output=True,
        text=True,
        check=True,
    )


def _relocate_imports(text: str, relocation: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        return match.group(1) + relocation.get(match.group(2), match.group(2)) + match.group(3)

    return _IMPORT_RE.sub(sub, text)


def _package_dirs(spec: ProtoSpec) -> Iterator[str]:
    """cri/api, cri/api/runtime, cri/api/runtime/v1 for cri/api/runtime/v1."""
    parts = Path(spec.package_dir).parts
    root_len = len(Path(API_ROOT).parts)
    for end in range(root_len, len(parts) + 1):
        yield "/".join(parts[:end])


def generate(dest: Path, *, protos: Sequence[ProtoSpec] = PROTOS) -> list[Path]:
    """Generate every proto's modules under ``dest`` (a repository-shaped root).

    Returns the generated files, relative to ``dest``. Only generated files are written; the
    ``__init__.py`` files are checked in by hand.
    """
    relocation = {spec.source: spec.relocated for spec in protos}
    with tempfile.TemporaryDirectory(prefix="pinnace-proto-") as tmp:
        tree = Path(tmp)
        for spec in protos:
            target = tree / spec.relocated
            target.parent.mkdir(parents=True, exist_ok=True)
            text = (PROTO_ROOT / spec.source).read_text()
            target.write_text(_relocate_imports(text, relocation))
        dest.mkdir(parents=True, exist_ok=True)
        run_protoc(
            [
                f"-I{tree}",
                f"--python_out={dest}",
                f"--pyi_out={dest}",
                f"--grpc_python_out={dest}",
                *(spec.relocated for spec in protos),
            ]
        )
    return [Path(spec.package_dir) / name for spec in protos for name in spec.generated_names()]


def check(*, protos: Sequence[ProtoSpec] = PROTOS, root: Path = REPO_ROOT) -> list[str]:
    """Regenerate into a temporary directory; describe every way ``root`` differs from it.

    An empty list means the checked-in code is exactly what the protos generate.
    """
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pinnace-proto-check-") as tmp:
        fresh_root = Path(tmp)
        expected = generate(fresh_root, protos=protos)
        for rel in expected:
            fresh = (fresh_root / rel).read_text()
            current_path = root / rel
            if not current_path.exists():
                problems.append(f"{rel}: missing (run scripts/gen_proto.py)")
                continue
            current = current_path.read_text()
            if current != fresh:
                diff = list(
                    difflib.unified_diff(
                        current.splitlines(),
                        fresh.splitlines(),
                        f"{rel} (checked in)",
                        f"{rel} (generated)",
                        lineterm="",
                        n=1,
                    )
                )
                shown = "\n".join(diff[:40])
                more = f"\n... {len(diff) - 40} more diff lines" if len(diff) > 40 else ""
                problems.append(f"{rel}: differs from generated code\n{shown}{more}")
    for spec in protos:
        for pkg in _package_dirs(spec):
            if not (root / pkg / "__init__.py").exists():
                problems.append(f"{pkg}/__init__.py: missing")
    expected_set = {str(rel) for rel in expected}
    generated = [*(root / API_ROOT).rglob("*_pb2*.py"), *(root / API_ROOT).rglob("*_pb2*.pyi")]
    for path in sorted(generated):
        found = str(path.relative_to(root))
        if found not in expected_set:
            problems.append(f"{found}: generated file with no proto in PROTOS (stale?)")
    return problems


def write(*, protos: Sequence[ProtoSpec] = PROTOS, root: Path = REPO_ROOT) -> list[Path]:
    """Regenerate the checked-in files in place (atomically per run: generate, then copy)."""
    with tempfile.TemporaryDirectory(prefix="pinnace-proto-gen-") as tmp:
        fresh_root = Path(tmp)
        written = generate(fresh_root, protos=protos)
        for rel in written:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(fresh_root / rel, root / rel)
    return written


# --- structural comparison ---------------------------------------------------------------


def strip_gogo(text: str) -> str:
    """Remove gogoproto imports and options, which do not exist on the wire."""
    text = _GOGO_IMPORT_RE.sub("", text)
    text = _GOGO_FILE_OPTION_RE.sub("", text)
    text = _GOGO_FIELD_OPTION_RE.sub("", text)
    text = re.sub(r"\[\s*,\s*", "[", text)
    text = re.sub(r",\s*(?:,\s*)*\]", "]", text)
    text = re.sub(r",\s*,", ",", text)
    return re.sub(r"\s*\[\s*\]", "", text)


def load_descriptor(proto_text: str, *, name: str = "api.proto") -> FileDescriptorProto:
    """Compile one self-contained proto text to a FileDescriptorProto (no source info)."""
    with tempfile.TemporaryDirectory(prefix="pinnace-proto-desc-") as tmp:
        (Path(tmp) / name).write_text(proto_text)
        out = Path(tmp) / "set.pb"
        run_protoc([f"-I{tmp}", f"--descriptor_set_out={out}", name])
        fds = FileDescriptorSet.FromString(out.read_bytes())
    (fdp,) = [f for f in fds.file if f.name == name]
    return fdp


def _opts(message: Message) -> str:
    return text_format.MessageToString(message, as_one_line=True)


def flatten(fdp: FileDescriptorProto) -> dict[str, str]:
    """Every wire-relevant fact of a file, keyed by a readable path.

    Covers the package, file options, messages (nested and map entries), fields (number, label,
    type, type name, JSON name, oneof, proto3 optional, default, options), oneofs, reserved
    ranges and names, enums and their values, services and methods (types, streaming, options).
    """
    facts: dict[str, str] = {
        "file.package": fdp.package,
        "file.syntax": fdp.syntax,
        "file.options": _opts(fdp.options),
        "file.dependencies": ",".join(sorted(fdp.dependency)),
    }

    def enum(prefix: str, e: EnumDescriptorProto) -> None:
        key = f"enum {prefix}{e.name}"
        facts[key] = _opts(e.options)
        for v in e.value:
            facts[f"{key}.{v.name}"] = f"{v.number} {_opts(v.options)}".strip()
        for r in e.reserved_range:
            facts[f"{key} reserved {r.start}-{r.end}"] = ""
        for rn in e.reserved_name:
            facts[f"{key} reserved {rn}"] = ""

    def message(prefix: str, m: DescriptorProto) -> None:
        full = f"{prefix}{m.name}"
        key = f"message {full}"
        facts[key] = _opts(m.options)
        for f in m.field:
            oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else ""
            facts[f"{key}.{f.name}"] = (
                f"number={f.number} label={f.label} type={f.type} type_name={f.type_name} "
                f"json_name={f.json_name} oneof={oneof} proto3_optional={f.proto3_optional} "
                f"default={f.default_value!r} extendee={f.extendee} options={_opts(f.options)}"
            )
        for o in m.oneof_decl:
            facts[f"{key} oneof {o.name}"] = _opts(o.options)
        for r in m.reserved_range:
            facts[f"{key} reserved {r.start}-{r.end}"] = ""
        for rn in m.reserved_name:
            facts[f"{key} reserved {rn}"] = ""
        for e in m.enum_type:
            enum(f"{full}.", e)
        for n in m.nested_type:
            message(f"{full}.", n)

    pkg = f"{fdp.package}." if fdp.package else ""
    for m in fdp.message_type:
        message(pkg, m)
    for e in fdp.enum_type:
        enum(pkg, e)
    for s in fdp.service:
        key = f"service {pkg}{s.name}"
        facts[key] = _opts(s.options)
        for meth in s.method:
            facts[f"{key}/{meth.name}"] = (
                f"in={meth.input_type} out={meth.output_type} "
                f"client_streaming={meth.client_streaming} "
                f"server_streaming={meth.server_streaming} options={_opts(meth.options)}"
            )
    return facts


@dataclass(frozen=True, slots=True)
class Comparison:
    """Outcome of comparing two protos: counts of what was compared and every difference."""

    messages: int
    enums: int
    fields: int
    enum_values: int
    services: int
    methods: int
    differences: tuple[str, ...]
    identical_descriptors: bool


def compare(ours_text: str, theirs_text: str) -> Comparison:
    """Compare two self-contained protos fact by fact (gogoproto stripped from both)."""
    ours = load_descriptor(strip_gogo(ours_text))
    theirs = load_descriptor(strip_gogo(theirs_text))
    a, b = flatten(ours), flatten(theirs)
    diffs = [f"only in ours: {k} = {a[k]}" for k in sorted(a.keys() - b.keys())]
    diffs += [f"only in theirs: {k} = {b[k]}" for k in sorted(b.keys() - a.keys())]
    diffs += [
        f"differs: {k}\n    ours:   {a[k]}\n    theirs: {b[k]}"
        for k in sorted(a.keys() & b.keys())
        if a[k] != b[k]
    ]
    counts = _count(ours)
    return Comparison(
        **counts,
        differences=tuple(diffs),
        identical_descriptors=ours.SerializeToString(deterministic=True)
        == theirs.SerializeToString(deterministic=True),
    )


def _count(fdp: FileDescriptorProto) -> dict[str, int]:
    counts = dict.fromkeys(("messages", "enums", "fields", "enum_values"), 0)

    def enum(e: EnumDescriptorProto) -> None:
        counts["enums"] += 1
        counts["enum_values"] += len(e.value)

    def message(m: DescriptorProto) -> None:
        counts["messages"] += 1
        counts["fields"] += len(m.field)
        for e in m.enum_type:
            enum(e)
        for n in m.nested_type:
            message(n)

    for m in fdp.message_type:
        message(m)
    for e in fdp.enum_type:
        enum(e)
    counts["services"] = len(fdp.service)
    counts["methods"] = sum(len(s.method) for s in fdp.service)
    return counts


def _tools_version() -> str:
    from importlib.metadata import version

    return version("grpcio-tools")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if checked-in code drifts")
    mode.add_argument(
        "--compare",
        nargs=2,
        metavar=("OURS", "THEIRS"),
        type=Path,
        help="structurally compare two self-contained .proto files",
    )
    args = parser.parse_args(argv)
    try:
        if args.compare:
            ours_path, theirs_path = args.compare
            result = compare(ours_path.read_text(), theirs_path.read_text())
            print(
                f"compared {result.messages} messages ({result.fields} fields), "
                f"{result.enums} enums ({result.enum_values} values), "
                f"{result.services} services ({result.methods} methods): "
                f"{len(result.differences)} differences; descriptors "
                f"{'identical' if result.identical_descriptors else 'NOT identical'} "
                "(without source info)"
            )
            for diff in result.differences:
                print(diff)
            return 1 if result.differences else 0
        if args.check:
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print(
                    f"{len(problems)} problem(s); run scripts/gen_proto.py "
                    f"(this checkout generates with grpcio-tools {_tools_version()}; "
                    "the dev pin in pyproject.toml must match)",
                    file=sys.stderr,
                )
                return 1
            print("generated code is up to date")
            return 0
        for rel in write():
            print(f"wrote {rel}")
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"protoc failed: {' '.join(exc.cmd[3:])}\n{exc.stderr.strip()}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
