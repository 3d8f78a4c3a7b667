"""Server frames on the wire (RFC 6455) and the per-turn joining of writes: checked against the websockets parser."""

from __future__ import annotations

import asyncio

import pytest
from websockets.frames import Opcode

from channels.wire import Coalescer, wire_frame
from tests.channels.hub_helpers import frame_text, parse_frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_frame_of_any_length_is_one_final_unmasked_text_frame(size: int) -> None:
    """Lengths on both sides of the 7-bit, 16-bit and 64-bit encodings."""
    text = "é" * (size // 2) + "x" * (size % 2)
    [frame] = parse_frames(wire_frame(text))
    assert (frame.opcode, frame.fin, bytes(frame.data).decode()) == (Opcode.TEXT, True, text)
    assert frame_text(wire_frame(text)) == text


class FakeTransport:
    """Records what is written, as one entry per write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing


async def test_frames_of_one_turn_go_out_in_one_write_in_order() -> None:
    """Three frames for one transport and one for another in the same turn: two writes, order kept."""
    out = Coalescer()
    first, second = FakeTransport(), FakeTransport()
    for text in ("a", "b", "c"):
        out.write(first, wire_frame(text))  # type: ignore[arg-type]
    out.write(second, wire_frame("z"))  # type: ignore[arg-type]
    assert first.writes == [] and second.writes == []
    await asyncio.sleep(0)
    assert [[frame.data for frame in parse_frames(data)] for data in first.writes] == [[b"a", b"b", b"c"]]
    assert second.writes == [wire_frame("z")]


async def test_one_transport_is_flushed_at_once_and_a_closing_one_is_skipped() -> None:
    """`flush(t)` writes t's frames now (a close frame must follow them); a closing transport gets nothing."""
    out = Coalescer()
    kept, gone = FakeTransport(), FakeTransport()
    out.write(kept, wire_frame("now"))  # type: ignore[arg-type]
    out.write(gone, wire_frame("never"))  # type: ignore[arg-type]
    out.flush(kept)  # type: ignore[arg-type]
    assert kept.writes == [wire_frame("now")]
    gone.closing = True
    await asyncio.sleep(0)
    assert kept.writes == [wire_frame("now")] and gone.writes == []
