"""The newest version of each thing a device has heard of, as docs/protocol.md "Versions" asks devices to keep it.

Events published right after commit can reach a channel out of commit order across server
instances, so a device may hear of an order's earlier state after a later one. Every
payload of an order, a payment or a cart, and every board entry, carries `version`, raised
by each change; a device keeps the payload with the highest version of each thing and
ignores an older one. One of the same version replaces it: a cart is priced afresh whenever
it is read, so a snapshot can bring new prices at the version the kiosk holds.

A thing is named by the first part of the event or command name that brought it (`order`,
`payment`, `cart`, `board`) and its id: `id`, or `order_id` for a board entry. Data
without `version` (the menu, presence, the connection's own replies) is not tracked.
"""

from __future__ import annotations

from typing import Any

# The things each list of a snapshot holds, by the list's key (docs/protocol.md "Snapshots").
_SNAPSHOT_ROWS = {
    "tickets": "order",
    "orders": "order",
    "carts": "cart",
    "payments": "payment",
    "preparing": "board",
    "ready": "board",
}


def _key(thing: str, data: dict[str, Any]) -> tuple[str, int]:
    return thing, int(data["order_id"] if thing == "board" else data["id"])


class Versions:
    """The payload with the highest version of each order, payment, cart and board entry heard of."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], dict[str, Any]] = {}

    def take(self, name: str, data: Any) -> bool:
        """Keep `data`, brought by the event or command `name`, unless it is older than the one held; whether it was."""
        if not isinstance(data, dict) or "version" not in data:
            return False
        key = _key(name.partition(".")[0], data)
        held = self._held.get(key)
        if held is not None and held["version"] > data["version"]:
            return False
        self._held[key] = data
        return True

    def take_snapshot(self, data: Any) -> None:
        """Keep every row of a snapshot that is not older than the one held (a board row with its column)."""
        if not isinstance(data, dict):
            return
        for list_key, thing in _SNAPSHOT_ROWS.items():
            for row in data.get(list_key) or []:
                self.take(thing, row | {"column": list_key} if thing == "board" else row)

    def is_newest(self, name: str, data: Any) -> bool:
        """Whether `data` (brought by `name`) is not older than the one held: False means ignore it."""
        if not isinstance(data, dict) or "version" not in data:
            return True
        held = self._held.get(_key(name.partition(".")[0], data))
        return held is None or held["version"] <= data["version"]

    def get(self, thing: str, thing_id: int) -> dict[str, Any] | None:
        """The newest payload held of an `order`, `payment`, `cart` or `board` entry (by order id), if any."""
        return self._held.get((thing, thing_id))
