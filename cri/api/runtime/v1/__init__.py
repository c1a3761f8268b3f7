"""Generated code for CRI ``runtime.v1``: ``from cri.api.runtime.v1 import api_pb2, api_pb2_grpc``.

The source is proto/runtime/v1/api.proto, which mirrors kubernetes/cri-api on the wire.
"""
