"""Run the OpenAI-compatible app with uvicorn: in the foreground (``llavidal serve MODEL --api``) or in a
background thread (`BackgroundServer`, for notebooks and tests).

The server listens on 127.0.0.1 unless told otherwise; any other address is logged as a warning, since every
machine that can reach it may then use the model and read the videos under the allowed folders. The socket
is bound before uvicorn starts, so an address in use is one `LlavidalError`, and port 0 picks a free port.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

from llavidal_core.errors import LlavidalError
from llavidal_core.inference.openai_api.app import ApiOptions, build_app

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8000
START_TIMEOUT_S = 30.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one).

    Raises:
        LlavidalError: the address cannot be used (unknown host, port in use, no permission).
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
        listener = socket.socket(family, kind, protocol)
    except OSError as exc:
        raise LlavidalError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise LlavidalError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener


def _server(pipeline, options: ApiOptions, listener: socket.socket, log_level: str, quiet_logs: bool):
    import uvicorn

    if not is_loopback(listener.getsockname()[0]):
        logger.warning("the API listens on %s, which other machines may reach: anyone who can connect may use the "
                       "model and have it read videos under the allowed folders", listener.getsockname()[0])
    config = uvicorn.Config(build_app(pipeline, options), log_level=log_level, timeout_graceful_shutdown=5,
                            **({"log_config": None} if quiet_logs else {}))
    return uvicorn.Server(config)


def url_of(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


class BackgroundServer:
    """The app served by uvicorn in a daemon thread; `close` stops it. ``url`` is the API's base URL
    (``http://127.0.0.1:PORT/v1``, what OpenAI clients take as ``base_url``)."""

    def __init__(self, pipeline, options: ApiOptions, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning"):
        listener = bind(host, port)
        self.url = url_of(listener)
        self._server = _server(pipeline, options, listener, log_level, quiet_logs=True)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [listener]}, daemon=True,
                                        name="llavidal-api")
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise LlavidalError(f"the API server did not start on {self.url}")
            time.sleep(0.02)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT_S)

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def serve_api(pipeline, options: ApiOptions, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
              log_level: str = "info") -> None:
    """Serve ``pipeline`` on ``host:port`` until interrupted (Ctrl+C), logging each request at ``log_level``
    ("info"; "warning" for errors only).

    Raises:
        LlavidalError: the address cannot be used.
    """
    listener = bind(host, port)
    logger.info("the OpenAI-compatible API of %s is at %s", options.model_name, url_of(listener))
    _server(pipeline, options, listener, log_level, quiet_logs=False).run(sockets=[listener])
