"""Server frames as bytes on the wire (RFC 6455): built once, written to every subscriber's socket as they are.

A server never masks its frames, so one event's frame is the same bytes for every
connection: the hub builds them once per delivery instead of once per subscriber.
"""

from __future__ import annotations

import asyncio
import logging
import struct

log = logging.getLogger("channels.wire")

_TEXT_FIN = 0x81


def wire_frame(text: str) -> bytes:
    """The complete unmasked, unfragmented text frame carrying `text`."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        return bytes((_TEXT_FIN, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", _TEXT_FIN, 126, length) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, length) + payload


class Coalescer:
    """Joins the frames written to each transport within one turn of the event loop into one write.

    A burst of events reaches a subscriber as several frames in the same turn (the broker's
    reader hands over every message it has already read before it waits again); each
    `transport.write` is a system call, so the frames are kept per transport and written
    together when the turn ends. Frames still go out in the order given, in the same turn.
    """

    def __init__(self) -> None:
        self._pending: dict[asyncio.Transport, list[bytes]] = {}

    def write(self, transport: asyncio.Transport, frame: bytes) -> None:
        """Write `frame` to `transport` at the end of this turn, after the frames given before it."""
        queued = self._pending.get(transport)
        if queued is not None:
            queued.append(frame)
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending[transport] = [frame]

    def flush(self, transport: asyncio.Transport | None = None) -> None:
        """Write what is pending now: for one transport (before its close frame), or for all."""
        if transport is not None:
            _write(transport, self._pending.pop(transport, None))
            return
        pending, self._pending = self._pending, {}
        for target, queued in pending.items():
            _write(target, queued)

    def discard(self, transport: asyncio.Transport) -> None:
        """Drop what is pending for `transport` (its connection is closing without them)."""
        self._pending.pop(transport, None)


def _write(transport: asyncio.Transport, frames: list[bytes] | None) -> None:
    """Write `frames` to `transport` in one call, unless it is closing; a failure is logged, not raised,
    so that one broken socket never costs the others their frames."""
    if not frames or transport.is_closing():
        return
    try:
        transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
    except Exception:
        log.exception("writing to a socket failed")
