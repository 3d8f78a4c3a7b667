"""A device socket's outgoing side over a fake asyncio transport: frame order, the send bound and the close."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from starlette.websockets import WebSocket

from channels import frames
from channels.wire import Coalescer, wire_frame
from server.realtime.limits import SocketLimits
from server.realtime.transport import SocketTransport
from server.realtime.ws_protocol import TRANSPORT_EXTENSION
from tests.channels.hub_helpers import parse_frames

LIMIT_S = 2.0
BOUND = 4096
LIMITS = SocketLimits(
    hello_timeout_s=10.0,
    max_message_bytes=65536,
    max_bad_frames=20,
    command_rate_per_s=20.0,
    command_burst=40,
    send_buffer_bytes=BOUND,
    close_timeout_s=LIMIT_S,
)
# A frame of 1000 characters is 1004 bytes on the wire.
KILOBYTE = "x" * 1000


class FakeSocket:
    """The asyncio transport under a socket: records each write; `buffered` is what the kernel has not taken."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.log.append(("write", *_texts(data)))

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.aborted = True


class Peer:
    """A socket's transport over a fake asyncio transport, and what went out: writes and close frames, in order."""

    def __init__(self, limits: SocketLimits = LIMITS, *, close_hangs: bool = False) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.raw = FakeSocket(self.log)
        self.close_hangs = close_hangs
        self.client_left = False
        self.registry = CollectorRegistry()
        drops = Counter("drops", "Sockets dropped as too slow.", registry=self.registry)
        scope = {"type": "websocket", "path": "/ws", "headers": [], "extensions": {TRANSPORT_EXTENSION: self.raw}}
        self.websocket = WebSocket(scope, self._receive, self._send)
        self.transport = SocketTransport(self.websocket, Coalescer(), limits, drops)

    @property
    def drops(self) -> float | None:
        """How many times the socket was dropped as too slow."""
        return self.registry.get_sample_value("drops_total")

    async def _receive(self) -> dict[str, Any]:
        if self.client_left:
            return {"type": "websocket.disconnect", "code": 1000}
        return {"type": "websocket.connect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.close":
            if self.close_hangs:
                await asyncio.Event().wait()  # the close frame waits behind what the client never reads
            self.log.append(("close", message["code"], message["reason"]))


def _texts(data: bytes) -> list[str]:
    """The text of every frame in `data`."""
    return [bytes(frame.data).decode() for frame in parse_frames(data)]


@pytest.fixture
async def peer() -> Peer:
    """An accepted socket with the default test limits."""
    opened = Peer()
    await asyncio.wait_for(opened.websocket.accept(), LIMIT_S)
    return opened


async def test_frames_of_one_turn_go_out_in_order_in_one_write(peer: Peer) -> None:
    """Frames sent in one turn are written together when it ends, in the order sent; the next turn's follow."""
    for text in ("a", "b", "c"):
        peer.transport.send_text(text)
    assert peer.log == []
    await asyncio.sleep(0)
    peer.transport.send_text("d")
    await asyncio.sleep(0)
    assert peer.log == [("write", "a", "b", "c"), ("write", "d")]


async def test_bytes_held_for_the_turn_count_towards_the_send_bound(peer: Peer) -> None:
    """Frames not yet written at the end of the turn count: past the bound, the socket is dropped with 4008."""
    sent = [peer.transport.send(wire_frame(KILOBYTE)) for _ in range(6)]
    # 4 x 1004 bytes held is within the bound, so the fifth frame goes; with 5 held the sixth finds it passed.
    assert sent == [True] * 5 + [False]
    assert (peer.drops, peer.transport.close_code) == (1, frames.TOO_SLOW)
    assert peer.transport.send(wire_frame("after")) is True  # refused quietly: the close is under way
    await peer.transport.closed(LIMIT_S)
    assert peer.log == [("write", *[KILOBYTE] * 5), ("close", frames.TOO_SLOW, "send queue overflowed")]


async def test_frames_written_no_longer_count_as_held(peer: Peer) -> None:
    """Once a turn's frames are in the kernel's hands, the next turn starts with nothing held."""
    for _ in range(3):
        assert all(peer.transport.send(wire_frame(KILOBYTE)) for _ in range(4))
        await asyncio.sleep(0)
    assert peer.transport.close_code is None
    assert peer.log == [("write", *[KILOBYTE] * 4)] * 3


async def test_bytes_the_transport_still_buffers_count_towards_the_send_bound(peer: Peer) -> None:
    """A transport whose buffer has passed the bound gets nothing more: 4008, and the frame is not written."""
    peer.raw.buffered = BOUND + 1
    assert peer.transport.send(wire_frame("late")) is False
    await peer.transport.closed(LIMIT_S)
    assert peer.log == [("close", frames.TOO_SLOW, "send queue overflowed")]
    assert peer.drops == 1


async def test_the_close_frame_follows_what_was_sent_and_nothing_after_it(peer: Peer) -> None:
    """A close sends the frames already given, then the close frame; the first code wins and later frames are
    dropped."""
    peer.transport.send_text("one")
    peer.transport.send_text("two")
    peer.transport.close(1000, "bye")
    peer.transport.close(frames.UNAUTHORIZED, "too late")
    peer.transport.send_text("three")
    await peer.transport.closed(LIMIT_S)
    peer.transport.send_text("four")
    await asyncio.sleep(0)
    assert peer.log == [("write", "one", "two"), ("close", 1000, "bye")]
    assert peer.drops == 0


async def test_going_away_lets_the_command_in_hand_reply_first(peer: Peer) -> None:
    """A 1001 close waits for the command being handled; its reply goes out before the close frame."""
    peer.transport.busy = True
    peer.transport.close(frames.GOING_AWAY, "server going away")
    for _ in range(3):
        await asyncio.sleep(0)
    assert peer.log == []
    peer.transport.send_text("reply")
    peer.transport.command_done()
    await peer.transport.closed(LIMIT_S)
    assert peer.log == [("write", "reply"), ("close", frames.GOING_AWAY, "server going away")]


async def test_a_close_frame_stuck_behind_unread_frames_drops_the_connection() -> None:
    """When the close frame cannot go out within the close timeout, the connection is dropped without it."""
    stuck = Peer(replace(LIMITS, close_timeout_s=0.05), close_hangs=True)
    await asyncio.wait_for(stuck.websocket.accept(), LIMIT_S)
    stuck.transport.close(frames.TOO_SLOW, "send queue overflowed")
    await stuck.transport.closed(LIMIT_S)
    assert stuck.raw.aborted
    assert stuck.log == []


async def test_a_client_that_left_first_is_sent_no_close(peer: Peer) -> None:
    """After the client's own close, closing sends nothing."""
    peer.client_left = True
    assert (await asyncio.wait_for(peer.websocket.receive(), LIMIT_S))["type"] == "websocket.disconnect"
    peer.transport.close(1000, "")
    await peer.transport.closed(LIMIT_S)
    assert peer.log == []
    assert not peer.raw.aborted


def test_a_socket_without_its_transport_is_refused() -> None:
    """A server that does not hand the socket its transport (not uvicorn_config's) fails loudly."""
    websocket = WebSocket({"type": "websocket", "path": "/ws", "headers": [], "extensions": {}}, _never, _never)
    with pytest.raises(RuntimeError, match="uvicorn_config"):
        SocketTransport(websocket, Coalescer(), LIMITS, Counter("drops", "", registry=CollectorRegistry()))


async def _never(*args: Any) -> Any:
    raise AssertionError("not called")
