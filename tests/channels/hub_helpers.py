"""What tests of the hub and its callers share: reading a frame back off the wire, and joining in one step."""

from __future__ import annotations

from channels.hub import ChannelStatus, Hub, Subscriber


def frame_text(wire: bytes) -> str:
    """The text a frame built by `channels.wire.wire_frame` carries."""
    length = wire[1] & 0x7F
    start = 2 if length < 126 else 4 if length == 126 else 10
    return wire[start:].decode()


async def join(hub: Hub, subscriber: Subscriber, channel: str, since: tuple[int, str] | None = None) -> ChannelStatus:
    """Subscribe and bring the subscriber up to date at once, as the socket does on `hello` and `subscribe`."""
    prepared = await hub.prepare(subscriber, channel, since)
    hub.complete(subscriber, channel, prepared)
    return prepared.status
