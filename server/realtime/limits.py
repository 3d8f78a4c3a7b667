"""What one device socket may do: the limits the settings give (`SocketLimits`) and the counters that apply them.

`create_app` builds one `SocketLimits` from the `WS_*` settings and hands it to the socket
endpoint; each connection keeps an `Allowance` of its own against it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from server.settings import Settings

# The window of WS_MAX_BAD_FRAMES: bad frames are counted per minute.
BAD_FRAME_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """Sizes, rates and timeouts of one device socket (docs/protocol.md, Limits)."""

    # No hello within this many seconds of the upgrade: close 4001.
    hello_timeout_s: float
    # A frame larger than this closes the connection (1009).
    max_message_bytes: int
    # More bad frames than this within a minute: close 4000.
    max_bad_frames: int
    # The command token bucket: refilled at this rate, holding at most `command_burst` (then 4029).
    command_rate_per_s: float
    command_burst: int
    # Unsent bytes past this (held for the end of the loop turn, or in the transport's buffer): close 4008.
    send_buffer_bytes: int
    # How long a close frame may wait behind unread frames before the connection is dropped instead.
    close_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SocketLimits:
        """The limits the `WS_*` settings give."""
        return cls(
            hello_timeout_s=settings.WS_HELLO_TIMEOUT_S,
            max_message_bytes=settings.WS_MAX_MESSAGE_BYTES,
            max_bad_frames=settings.WS_MAX_BAD_FRAMES,
            command_rate_per_s=settings.WS_COMMAND_RATE_PER_S,
            command_burst=settings.WS_COMMAND_BURST,
            send_buffer_bytes=settings.WS_SEND_BUFFER_BYTES,
            close_timeout_s=settings.WS_CLOSE_TIMEOUT_S,
        )


class Allowance:
    """One connection's standing against its limits: bad frames a minute (then 4000) and a command token bucket."""

    __slots__ = ("_limits", "_bad", "_tokens", "_stamp", "refused_in_a_row")

    def __init__(self, limits: SocketLimits) -> None:
        self._limits = limits
        self._bad: deque[float] | None = None  # made at the first bad frame: most connections never send one
        self._tokens = float(limits.command_burst)
        self._stamp = time.monotonic()
        self.refused_in_a_row = 0

    def bad_frame(self) -> bool:
        """Count a bad frame; True when the connection has abused the protocol enough to be closed."""
        now = time.monotonic()
        bad = self._bad = self._bad if self._bad is not None else deque()
        bad.append(now)
        while bad and now - bad[0] > BAD_FRAME_WINDOW_S:
            bad.popleft()
        return len(bad) > self._limits.max_bad_frames

    def take(self) -> bool:
        """Take a command token; False when the client sends faster than allowed."""
        now = time.monotonic()
        limits = self._limits
        self._tokens = min(limits.command_burst, self._tokens + (now - self._stamp) * limits.command_rate_per_s)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False

    def exhausted(self) -> bool:
        """True when the client kept sending through more refusals in a row than its burst (then 4029)."""
        return self.refused_in_a_row > self._limits.command_burst
