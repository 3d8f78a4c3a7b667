"""The connection's own frames (`welcome` and the replies of its own commands) and device presence.

server/realtime/connection.py and channels/presence.py build this data; the models describe it for
the AsyncAPI document, and the tests hold a live server's frames to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from persistence.enums import DeviceKind


class ChannelPosition(BaseModel):
    """Where the client starts on a channel: its seq and epoch, and whether missed events follow (resumed)."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0)
    epoch: str
    resumed: bool


class DevicePrincipal(BaseModel):
    """A device, as `welcome` names it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["device"]
    id: int
    branch_id: int
    device_kind: DeviceKind
    station: str | None = Field(
        default=None,
        description="kitchen displays only: the code of its station (subscribed to branch:{b}:kitchen:{station} "
        "on hello), null for a whole-kitchen display",
    )


class UserPrincipal(BaseModel):
    """A user, as `welcome` names it; `branch_id` null for chain-wide users (admins)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["user"]
    id: int
    branch_id: int | None
    role: str
    permissions: list[str]


class WelcomeData(BaseModel):
    """The answer to `hello`: who the connection acts for and the channels it was subscribed to."""

    model_config = ConfigDict(extra="forbid")

    connection_id: str
    # A plain union: AsyncAPI spells `discriminator` differently from the OpenAPI form pydantic writes.
    principal: DevicePrincipal | UserPrincipal
    server_time: datetime
    heartbeat_s: float = Field(description="seconds between the server's WebSocket pings")
    channels: dict[str, ChannelPosition] = Field(description="each channel subscribed on hello, by name")
    locale: str | None = Field(
        default=None,
        description=(
            "the hello's locale when the branch offers it: the connection's menu snapshot, `menu.get` and new carts "
            "are in it; null: the branch's default (no locale asked, or one the branch does not offer)"
        ),
    )


class SubscribeReply(ChannelPosition):
    """`subscribe` succeeded: the channel and where the client starts on it."""

    channel: str


class UnsubscribeReply(BaseModel):
    """`unsubscribe` done (also when the client was not subscribed)."""

    model_config = ConfigDict(extra="forbid")

    channel: str


class RefreshReply(BaseModel):
    """`auth.refresh` accepted: the connection now ends when the new token expires."""

    model_config = ConfigDict(extra="forbid")

    expires_at: datetime


class DevicePresence(BaseModel):
    """`device.online` / `device.offline`: a device got its first connection or lost its last one."""

    model_config = ConfigDict(extra="forbid")

    device_id: int
    branch_id: int
    online: bool
    at: datetime
