"""Who may subscribe to which channel, and which channels a device gets on `hello` (PROTOCOL.md "Channels").

Users bound to a branch see that branch's channels; users bound to no branch (admins)
see every channel, devices' own included. A device sees its own `device:{d}` channel,
its branch's menu, and the branch channels its kind is made for (the kitchen for
kitchen displays, the board for order boards). A kitchen display of a station is
subscribed to its station's kitchen (`branch:{b}:kitchen:{station}`) instead of the whole
kitchen on hello, and may subscribe to either, or to any station's of its branch.
"""

from __future__ import annotations

from typing import Literal, Protocol

from channels import names
from channels.names import ChannelName


class Audience(Protocol):
    """What the rules need to know about a principal."""

    @property
    def kind(self) -> Literal["user", "device"]: ...

    @property
    def id(self) -> int: ...

    @property
    def branch_id(self) -> int | None: ...

    @property
    def device_kind(self) -> str | None: ...

    @property
    def is_chain_wide(self) -> bool: ...

    @property
    def station(self) -> str | None: ...


# The branch topics each device kind is subscribed to on hello (PROTOCOL.md, word for word).
DEVICE_TOPICS: dict[str, tuple[names.BranchTopic, ...]] = {
    "kiosk": ("menu",),
    "payment_terminal": (),
    "kitchen_display": ("kitchen", "menu"),
    "order_board": ("board",),
}

# The kinds also subscribed to their own `device:{d}` on hello; the others may subscribe to it themselves.
OWN_CHANNEL_ON_HELLO: frozenset[str] = frozenset({"kiosk", "payment_terminal"})

# The branch topics a device may subscribe to: the menu is for every device of its branch, the kitchen
# for kitchen displays and the board for order boards; orders and devices are for staff only.
DEVICE_MAY_SUBSCRIBE: dict[str, tuple[names.BranchTopic, ...]] = {
    "kiosk": ("menu",),
    "payment_terminal": ("menu",),
    "kitchen_display": ("kitchen", "menu"),
    "order_board": ("board", "menu"),
}


def auto_channels(who: Audience) -> list[str]:
    """The channels a principal is subscribed to on `hello`: a device's by its kind, none for users."""
    if who.kind != "device" or who.branch_id is None:
        return []
    kind = str(who.device_kind)
    by_topic = {
        "menu": names.branch_menu,
        "kitchen": names.branch_kitchen,
        "board": names.branch_board,
        "orders": names.branch_orders,
        "devices": names.branch_devices,
    }
    channels = [by_topic[topic](who.branch_id) for topic in DEVICE_TOPICS.get(kind, ())]
    if who.station is not None and kind == "kitchen_display":
        # The display of one station: its lines, not the whole kitchen's.
        channels[channels.index(names.branch_kitchen(who.branch_id))] = names.branch_station(who.branch_id, who.station)
    if kind in OWN_CHANNEL_ON_HELLO:
        channels.append(names.device(who.id))
    return channels


def may_subscribe(who: Audience, channel: ChannelName) -> bool:
    """True when `who` may receive `channel`'s events."""
    if who.kind == "user":
        if who.is_chain_wide:
            return True
        return channel.branch_id is not None and channel.branch_id == who.branch_id
    if channel.device_id is not None:
        return channel.device_id == who.id
    return channel.branch_id == who.branch_id and channel.topic in DEVICE_MAY_SUBSCRIBE.get(str(who.device_kind), ())
