"""Distribution: image references, containerd-style ``hosts.toml`` resolution, registry
authentication and the OCI distribution HTTP client (resolve, fetch, push)."""
