"""Running the app under uvicorn, with the protocol's WebSocket limits and a graceful stop.

On SIGTERM or SIGINT the server stops accepting connections, lets every socket finish
the command it is handling, closes it with 1001 (clients reconnect and resume,
possibly on another instance), and exits within `SHUTDOWN_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import math
import socket

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from channels import frames
from server.observability.logs import uvicorn_log_config
from server.realtime.ws_protocol import DeviceWebSocketProtocol
from server.services import Services
from server.settings import Settings


def uvicorn_config(app: Starlette, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration for `app`: frame size limit (1009), heartbeat pings, proxy headers, JSON logs."""
    return uvicorn.Config(
        ForwardedHeaders(app, settings.FORWARDED_ALLOW_IPS) if settings.FORWARDED_ALLOW_IPS else app,
        host=host,
        port=port,
        log_config=uvicorn_log_config(),
        # Hands the socket's transport to the app, which writes prepared frames to it (server/realtime/ws_protocol.py).
        ws=DeviceWebSocketProtocol,
        # uvicorn's own handling trusts loopback unless told otherwise (and reads its own variable):
        # FORWARDED_ALLOW_IPS, through the settings and ForwardedHeaders, is the one rule.
        proxy_headers=False,
        ws_max_size=settings.WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=settings.WS_HEARTBEAT_S,
        ws_ping_timeout=settings.WS_HEARTBEAT_S,
        # Compression would redo the work for every subscriber: the hub sends one prepared frame to all.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=math.ceil(settings.SHUTDOWN_GRACE_S),
    )


class ForwardedHeaders:
    """The client address and scheme a trusted proxy forwards, in place of the proxy's own.

    Only a peer in `trusted` (IP addresses and networks, or `*` for any peer) is believed.
    Each proxy appends the address it got the request from to X-Forwarded-For, so the
    client is the rightmost address that no trusted proxy wrote; whatever a client puts in
    the header itself sits further left and is never taken. With `*` only the connecting
    peer is known to be a proxy, so the address it appended (the rightmost) is the client.
    """

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = app
        self._any_peer = trusted == ["*"]
        self._networks = [ipaddress.ip_network(proxy, strict=False) for proxy in trusted if proxy != "*"]

    def trusts(self, host: str) -> bool:
        """True when `host` is a proxy whose forwarded headers are believed."""
        if self._any_peer:
            return True
        address = _ip(host)
        return address is not None and any(address in network for network in self._networks)

    def client(self, forwarded_for: str) -> str | None:
        """The client's address by the X-Forwarded-For chain; None when the chain names no IP address."""
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if not hops:
            return None
        if self._any_peer:
            chosen = hops[-1]
        else:
            # Every hop trusted: the request began at a trusted host, the first one written.
            chosen = next((hop for hop in reversed(hops) if not self.trusts(hop)), hops[0])
        address = _ip(chosen)
        return str(address) if address is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the scope's client and scheme when the peer is trusted, then call the app."""
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and self.trusts(peer[0]):
            headers = [(name, value.decode("latin-1")) for name, value in scope["headers"]]
            forwarded_for = ",".join(value for name, value in headers if name == b"x-forwarded-for")
            client = self.client(forwarded_for)
            if client is not None:
                scope["client"] = (client, 0)
            protos = [value for name, value in headers if name == b"x-forwarded-proto"]
            proto = protos[-1].split(",")[-1].strip().lower() if protos else ""
            if proto in ("http", "https"):
                scope["scheme"] = proto.replace("http", "ws") if scope["type"] == "websocket" else proto
        await self.app(scope, receive, send)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address in `host` (a bare address, `v4:port` or `[v6]:port`), or None."""
    if host.startswith("[") and "]" in host:
        host = host[1 : host.index("]")]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; networks are written as IPv4.
    return (address.ipv4_mapped or address) if isinstance(address, ipaddress.IPv6Address) else address


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
        spread_s = self.services.settings.WS_RETRY_SPREAD_S
        hub.close_all(frames.GOING_AWAY, lambda: frames.with_retry_hint("server going away", spread_s))
        try:
            await asyncio.wait_for(hub.empty.wait(), self.services.settings.SHUTDOWN_GRACE_S / 2)
        except TimeoutError:
            pass
        await super().shutdown(sockets)
