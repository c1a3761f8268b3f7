"""SPDY/3.1 as the Kubernetes streaming protocols use it, sans-IO.

``frames`` turns bytes into frames and frames into bytes, ``headers`` compresses header
blocks with the SPDY/3 dictionary, ``session`` keeps streams, flow-control windows and the
protocol's rules, and reports what happened as events. Nothing here touches a socket.
"""
