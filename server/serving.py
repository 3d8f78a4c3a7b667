"""Running the app under uvicorn, with the protocol's WebSocket limits and a graceful stop.

On SIGTERM or SIGINT the server stops accepting connections, lets every socket finish
the command it is handling, closes it with 1001 (clients reconnect and resume,
possibly on another instance), and exits within `SHUTDOWN_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import gc
import math
import socket

import uvicorn
from starlette.applications import Starlette

from channels import frames
from server.logs import uvicorn_log_config
from server.services import Services
from server.settings import Settings
from server.ws_protocol import DeviceWebSocketProtocol


def uvicorn_config(
    app: Starlette, settings: Settings, *, host: str, port: int, forwarded_allow_ips: str | None = None
) -> uvicorn.Config:
    """The uvicorn configuration for `app`: frame size limit (1009), heartbeat pings, proxy headers, JSON logs."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=uvicorn_log_config(),
        # Hands the socket's transport to the app, which writes prepared frames to it (server/ws_protocol.py).
        ws=DeviceWebSocketProtocol,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        ws_max_size=settings.WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=settings.WS_HEARTBEAT_S,
        ws_ping_timeout=settings.WS_HEARTBEAT_S,
        # Compression would redo the work for every subscriber: the hub sends one prepared frame to all.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=math.ceil(settings.SHUTDOWN_GRACE_S),
    )


# Container allocations between young-generation collections (Python's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector's pauses out of event latency; call once the app is built.

    Everything that exists by then (modules, table metadata, models, settings) lives as long
    as the process, so it is frozen out of every later collection. Python's default collects
    the young generation every 700 net allocations and, often enough with thousands of
    sockets, the whole heap: a 20-30 ms stop for every subscriber (measured with
    bench/fanout.py at 1,000 subscribers). Collecting every 50,000 allocations makes the
    full collections rare; each young one stays at a few milliseconds.
    """
    gc.collect()  # start-up's own garbage must not be frozen with the rest
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


class GracefulServer(uvicorn.Server):
    """A uvicorn server that closes device sockets with 1001 after their in-flight commands, not 1012."""

    def __init__(self, config: uvicorn.Config, services: Services) -> None:
        super().__init__(config)
        self.services = services

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting, close every socket with 1001 once its command is done, then shut down as usual."""
        for server in self.servers:
            server.close()
        hub = self.services.hub
        hub.close_all(frames.GOING_AWAY, "server going away")
        try:
            await asyncio.wait_for(hub.empty.wait(), self.services.settings.SHUTDOWN_GRACE_S / 2)
        except TimeoutError:
            pass
        await super().shutdown(sockets)
