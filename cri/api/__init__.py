"""Generated protobuf and gRPC modules, one subpackage per proto package.

Never edit the ``*_pb2*.py[i]`` files: change the ``.proto`` under ``proto/`` and run
``scripts/gen_proto.py``; ``scripts/gen_proto.py --check`` (and tests/unit/test_proto_contract.py)
fail when they drift. Only ``cri/`` imports these modules, never ``runtime/``.
"""
