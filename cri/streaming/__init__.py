"""The streaming server: exec, attach and port-forward over SPDY/3.1 and WebSocket.

``server.py`` owns the sockets; everything else here is protocol code fed bytes (``spdy/``,
``websocket.py``, ``http1.py``) or the bridges between a negotiated stream protocol and the
runtime's exec, attach and dial operations.
"""
