"""Generated code for the Kubernetes CRI (proto package ``runtime``)."""
