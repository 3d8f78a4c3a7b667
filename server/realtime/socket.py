"""The device WebSocket at `{API_V1_STR}/ws` (PROTOCOL.md): the endpoint `create_app` mounts ahead of HTTP.

Each socket is accepted, says hello and is read until it ends (server/realtime/connection.py);
what it sends goes out through its transport (server/realtime/transport.py), within the
limits `create_app` builds from the settings (server/realtime/limits.py). While
`WS_MAX_HANDSHAKES` sockets are saying hello, one more is closed at once with 1013 and a
retry hint: in a reconnect storm the devices come back spread out instead of queueing for
the database until their hello times out.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from channels import frames
from server.commands.router import CommandRegistry
from server.realtime.connection import Connection
from server.realtime.limits import SocketLimits
from server.services import Services


class DeviceSocket:
    """The WebSocket endpoint, with the services, commands and socket limits `create_app` hands it."""

    def __init__(self, services: Services, commands: CommandRegistry, limits: SocketLimits) -> None:
        self.services = services
        self.commands = commands
        self.limits = limits
        self._handshakes = 0

    async def __call__(self, websocket: WebSocket) -> None:
        """Serve one device socket: hello, then its frames until it closes, then leave its channels."""
        services = self.services
        await websocket.accept()
        # The scope lives as long as the socket and nothing reads the handshake's headers again: let them go.
        websocket.scope["headers"] = []
        settings = services.settings
        if self._handshakes >= settings.WS_MAX_HANDSHAKES:
            services.metrics.handshakes_refused_busy.inc()
            await websocket.close(
                frames.TRY_AGAIN_LATER, frames.with_retry_hint("server busy", settings.WS_RETRY_SPREAD_S)
            )
            return
        connection = Connection(websocket, services, self.commands, self.limits)
        self._handshakes += 1
        try:
            welcomed = await connection.handshake()
        finally:
            self._handshakes -= 1
        if not welcomed:
            return
        assert connection.principal is not None
        gauge = services.metrics.connections.labels(str(connection.principal.device_kind or "user"))
        gauge.inc()
        try:
            await connection.read()
        finally:
            connection.transport.close(1000, "")
            await connection.transport.closed(services.settings.SHUTDOWN_GRACE_S)
            gauge.dec()
            await connection.finish()
