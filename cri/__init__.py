"""pinnace's CRI layer: the gRPC server, RPC handlers, CLI and the composition root."""
