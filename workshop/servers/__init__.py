"""Servers for lessons, tests and benchmarks (harness, not product): an ASGI app under real
uvicorn on a background thread (``background``), reference-server processes (``scaleout``),
Debian's nginx in front of them (``nginx``) and Debian's redis-server (``redis``)."""

from .background import BackgroundServer, serve_in_background, tcp_socket

__all__ = ["BackgroundServer", "serve_in_background", "tcp_socket"]
