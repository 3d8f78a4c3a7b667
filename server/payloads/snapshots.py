"""The data of each channel's snapshot (server/realtime/snapshots.py builds it): the state a client starts from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from persistence.enums import DeviceKind
from server.payloads.cart import CartView
from server.payloads.menu import MenuSnapshot
from server.payloads.order import BoardPlace, OrderView
from server.payloads.payment import PaymentView
from server.payloads.station import StationTicket


class KitchenSnapshot(BaseModel):
    """`branch:{b}:kitchen`: open tickets (paid, preparing or ready), the first paid first."""

    model_config = ConfigDict(extra="forbid")

    tickets: list[OrderView]


class StationInfo(BaseModel):
    """The station a station channel is of: its code, the name its display shows, and whether it is expo."""

    model_config = ConfigDict(extra="forbid")

    code: str
    name: str
    is_expo: bool


class StationSnapshot(BaseModel):
    """`branch:{b}:kitchen:{station}`: the station (null for a code the branch has no station for) and the open
    tickets with lines at it (every one at expo), the first paid first, each cut to the station's lines."""

    model_config = ConfigDict(extra="forbid")

    station: StationInfo | None
    tickets: list[StationTicket]


class BoardSnapshot(BaseModel):
    """`branch:{b}:board`: the orders preparing (paid orders included) and ready, the first paid first."""

    model_config = ConfigDict(extra="forbid")

    preparing: list[BoardPlace]
    ready: list[BoardPlace]


class OrdersSnapshot(BaseModel):
    """`branch:{b}:orders`: orders created in the last 24 hours and not completed, by id."""

    model_config = ConfigDict(extra="forbid")

    orders: list[OrderView]


class DeviceView(BaseModel):
    """A device of the branch and whether it has a live connection."""

    model_config = ConfigDict(extra="forbid")

    id: int
    kind: DeviceKind
    name: str
    is_active: bool
    online: bool


class DevicesSnapshot(BaseModel):
    """`branch:{b}:devices`: every device of the branch, by id."""

    model_config = ConfigDict(extra="forbid")

    devices: list[DeviceView]


class DeviceSnapshot(BaseModel):
    """`device:{d}`: its open carts, its orders awaiting payment and its payments pending or processing."""

    model_config = ConfigDict(extra="forbid")

    carts: list[CartView]
    orders: list[OrderView]
    payments: list[PaymentView]


# Channel kind (as `ChannelName.kind` spells it) -> the data of its snapshot.
SNAPSHOTS: dict[str, type[BaseModel]] = {
    "branch:menu": MenuSnapshot,
    "branch:kitchen": KitchenSnapshot,
    "branch:station": StationSnapshot,
    "branch:board": BoardSnapshot,
    "branch:orders": OrdersSnapshot,
    "branch:devices": DevicesSnapshot,
    "device": DeviceSnapshot,
}
