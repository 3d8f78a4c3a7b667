"""The simulator's device client: it decodes only the events its device acts on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from channels.client import DeviceClient
from channels.versions import Versions

# The start of an event frame as the server writes it (channels/brokers/base.py `event_frame`, and the broker's
# Lua script), with the data's `id` when it comes first (orders). Anchored, and with strings that hold no quote or
# backslash, a match reads those keys exactly; a frame written any other way does not match and is decoded in
# full, which costs time, never a frame.
EVENT_HEAD = re.compile(
    r'\{"type":"event","channel":"(?P<channel>[^"\\]*)","seq":(?P<seq>[0-9]+),"epoch":"(?P<epoch>[^"\\]*)",'
    r'"event":"(?P<event>[^"\\]*)","data":(?:\{"id":(?P<id>[0-9]+)[,}])?'
)

# Whether a device acts on an event: its name, and the data's `id` when the frame's head shows it (else None).
Wants = Callable[[str, int | None], bool]


def wants_payment(event: str, _id: int | None) -> bool:
    """A kiosk acts on its payments' events."""
    return event.startswith("payment.")


def wants_payment_request(event: str, _id: int | None) -> bool:
    """A terminal acts on the payments it is asked to charge."""
    return event == "payment.requested"


def wants_board(event: str, _id: int | None) -> bool:
    """A board acts on board updates."""
    return event == "board.updated"


class SimClient(DeviceClient):
    """A `DeviceClient` that decodes only the events its device acts on, and every other frame.

    Every kitchen display gets every step of every ticket of the branch, though each acts on
    `order.queued` of its own tickets only: decoding and queueing them all was most of the load
    generator's CPU. An event it skips still moves its channel's position (read from the head),
    so that a reconnect resumes after it.
    """

    def __init__(
        self,
        url: str,
        token: str,
        wants: Wants | None = None,
        *,
        resume: dict[str, dict[str, Any]] | None = None,
        stream: asyncio.Queue[dict[str, Any]] | None = None,
        versions: Versions | None = None,
        locale: str | None = None,
    ) -> None:
        super().__init__(url, token, resume=resume, stream=stream, versions=versions, locale=locale)
        self.wants = wants

    def skips(self, text: str | bytes) -> bool:
        """True for an event frame whose head shows an event the device does not act on."""
        if self.wants is None or not isinstance(text, str):
            return False
        head = EVENT_HEAD.match(text)
        if head is None:
            return False  # a reply, a snapshot, or an event written otherwise: decode it
        order_id = head.group("id")
        if self.wants(head.group("event"), None if order_id is None else int(order_id)):
            return False
        self.positions[head.group("channel")] = (int(head.group("seq")), head.group("epoch"))
        return True
