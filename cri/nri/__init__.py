"""NRI, the Node Resource Interface: the runtime side of containerd/nri's plugin protocol.

Lives under ``cri/`` because NRI messages are protobuf (generated into ``cri/api/nri`` from
``proto/nri``) and ``runtime/`` never imports generated code; the pod controllers in
``runtime/pods`` call a small hook interface that the adaptation here implements.

Layers, bottom up: ``mux`` (the connection multiplexer) and ``ttrpc`` (framing and unary
calls) are sans-IO and tested by feeding bytes.
"""
