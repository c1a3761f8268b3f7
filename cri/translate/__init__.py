"""Pure conversion between CRI protobuf messages and runtime dataclasses. No I/O here."""
