"""pinnace's durable metadata: one sqlite database in WAL mode with a versioned schema."""
