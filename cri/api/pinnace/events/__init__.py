"""Generated code for pinnace's own APIs (see proto/pinnace)."""
