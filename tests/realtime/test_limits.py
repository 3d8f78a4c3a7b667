"""The socket limits come from the `WS_*` settings, which the environment sets."""

from __future__ import annotations

import pytest

from server.realtime.limits import SocketLimits
from server.settings import Settings

ENVIRONMENT = {
    "WS_HELLO_TIMEOUT_S": "2.5",
    "WS_MAX_MESSAGE_BYTES": "2048",
    "WS_MAX_BAD_FRAMES": "3",
    "WS_COMMAND_RATE_PER_S": "7.5",
    "WS_COMMAND_BURST": "9",
    "WS_SEND_BUFFER_BYTES": "65536",
    "WS_CLOSE_TIMEOUT_S": "0.5",
}


def test_every_limit_is_read_from_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each WS_* variable sets its limit, the command rate included."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    assert SocketLimits.from_settings(Settings(_env_file=None)) == SocketLimits(
        hello_timeout_s=2.5,
        max_message_bytes=2048,
        max_bad_frames=3,
        command_rate_per_s=7.5,
        command_burst=9,
        send_buffer_bytes=65536,
        close_timeout_s=0.5,
    )


def test_the_defaults_are_the_documented_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the limits are those of docs/protocol.md: hello in 10 s, 20 commands a second in bursts of 40, 1 MiB."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    limits = SocketLimits.from_settings(Settings(_env_file=None))
    assert (limits.hello_timeout_s, limits.command_rate_per_s, limits.command_burst) == (10, 20, 40)
    assert (limits.send_buffer_bytes, limits.close_timeout_s) == (1 << 20, 5)
