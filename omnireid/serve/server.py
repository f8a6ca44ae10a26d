"""Running the gallery app under uvicorn on a socket bound here, so that port 0 works and the
address printed is the one actually listening."""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

log = logging.getLogger("omnireid.serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port) with ``TCP_NODELAY``.

    Made with protocol ``IPPROTO_TCP`` (``socket.create_server`` leaves it 0): asyncio sets
    ``TCP_NODELAY`` only on such sockets, and without it an answer sent as two writes waits
    for the client's delayed ACK, ~40 ms a request.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(256)
    except OSError:
        sock.close()
        raise
    return sock


def run(app: Any, host: str, port: int, *, access_log: bool = False) -> None:
    """Serve ``app`` until SIGINT or SIGTERM."""
    import uvicorn

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, access_log=access_log, log_level="warning", timeout_keep_alive=30)
    log.info("serving on http://%s:%d (API docs at /docs)", shown, bound)
    uvicorn.Server(config).run(sockets=[sock])
