"""serve_in_background: small SSE frames must leave at once (TCP_NODELAY)."""

import socket

from fastapi import FastAPI

from workshop.servers.background import serve_in_background


def test_listening_socket_is_tcp_so_asyncio_sets_nodelay():
    # asyncio sets TCP_NODELAY on accepted connections only when the listening socket's proto is
    # IPPROTO_TCP. Without it, Nagle's algorithm and the client's delayed ACK held each small SSE
    # frame back by about 40 ms (measured in notebook 11, section 9, "The delayed-ACK trap").
    server = serve_in_background(FastAPI())
    try:
        assert server._sock.proto == socket.IPPROTO_TCP
    finally:
        server.stop()
