"""One module per RPC or tight group of RPCs: ``handle(deps, request) -> response``.

Handlers receive protobuf requests, translate them (``cri/translate``), call the runtime, and
build protobuf responses. They raise ``runtime.errors``; the server interceptor maps those to
status codes.
"""
