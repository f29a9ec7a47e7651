"""Servers for lessons, tests and benchmarks (harness, not product): an ASGI app under real
uvicorn on a background thread (``background``), reference-server processes and a round-robin
TCP proxy (``scaleout``)."""

from .background import BackgroundServer, serve_in_background, tcp_socket

__all__ = ["BackgroundServer", "serve_in_background", "tcp_socket"]
