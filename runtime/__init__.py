"""pinnace's runtime core: content, snapshots, images, distribution, tasks, sandboxes.

Nothing here imports grpc, protobuf or ``cri``: the CRI layer translates to and from the
plain dataclasses this package speaks.
"""
