"""The reference every fan-out figure is compared with: bare `websockets`, same Redis subscription, no protocol.

    python -m bench.reference_server --port 8200 --redis redis://127.0.0.1:6379/0 --channel kiosk:ev:branch:1:board

Every client that connects is a subscriber; every frame published on the Redis channel is
sent to all of them with `broadcast()`, as the broker's frames arrive (already encoded).
"""

from __future__ import annotations

import argparse
import asyncio

from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()


async def handler(connection: ServerConnection) -> None:
    clients.add(connection)
    try:
        async for _ in connection:  # the client's hello and anything else: ignored
            pass
    finally:
        clients.discard(connection)


async def main(port: int, redis_url: str, channel: str) -> None:
    pubsub = Redis.from_url(redis_url).pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=None):
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(clients, message["data"].decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--channel", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.redis, args.channel))
