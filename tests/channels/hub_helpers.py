"""What tests of the hub and its callers share: reading frames back off the wire, and joining in one step."""

from __future__ import annotations

from websockets.frames import Frame
from websockets.streams import StreamReader

from channels.hub import ChannelStatus, Hub, Subscriber


def parse_frames(data: bytes) -> list[Frame]:
    """Every frame in `data`, read by the websockets library's own parser (unmasked: server to client)."""
    reader = StreamReader()
    reader.feed_data(data)
    parsed = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            parsed.append(done.value)
    return parsed


def frame_text(wire: bytes) -> str:
    """The text the one frame in `wire` carries."""
    [frame] = parse_frames(wire)
    return bytes(frame.data).decode()


async def join(hub: Hub, subscriber: Subscriber, channel: str, since: tuple[int, str] | None = None) -> ChannelStatus:
    """Subscribe and bring the subscriber up to date at once, as the socket does on `hello` and `subscribe`."""
    prepared = await hub.prepare(subscriber, channel, since)
    hub.complete(subscriber, channel, prepared)
    return prepared.status
