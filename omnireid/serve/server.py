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
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=256)


def run(app: Any, host: str, port: int, *, access_log: bool = False) -> None:
    """Serve ``app`` until SIGINT or SIGTERM."""
    import uvicorn

    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, access_log=access_log, log_level="warning", timeout_keep_alive=30)
    log.info("serving on http://%s:%d (API docs at /docs)", shown, bound)
    uvicorn.Server(config).run(sockets=[sock])
