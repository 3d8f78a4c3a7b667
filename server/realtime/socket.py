"""The device WebSocket at `{API_V1_STR}/ws` (PROTOCOL.md): the endpoint `create_app` mounts ahead of HTTP.

Each socket is accepted, says hello and is read until it ends (server/realtime/connection.py);
what it sends goes out through its transport (server/realtime/transport.py), within the
limits `create_app` builds from the settings (server/realtime/limits.py).
"""

from __future__ import annotations

from starlette.websockets import WebSocket

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

    async def __call__(self, websocket: WebSocket) -> None:
        """Serve one device socket: hello, then its frames until it closes, then leave its channels."""
        services = self.services
        await websocket.accept()
        # The scope lives as long as the socket and nothing reads the handshake's headers again: let them go.
        websocket.scope["headers"] = []
        connection = Connection(websocket, services, self.commands, self.limits)
        if not await connection.handshake():
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
