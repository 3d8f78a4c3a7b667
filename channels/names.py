"""Channel names: built by one function each, parsed in one place.

branch:{b}:menu  branch:{b}:kitchen  branch:{b}:kitchen:{station}  branch:{b}:board  branch:{b}:orders
branch:{b}:devices  device:{d}

and, for the server alone, principal:{device:d or user:u}, which no one subscribes to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BranchTopic = Literal["menu", "kitchen", "board", "orders", "devices"]
BRANCH_TOPICS: tuple[BranchTopic, ...] = ("menu", "kitchen", "board", "orders", "devices")

# Matched with fullmatch: `$` would also accept a name with a trailing newline, a channel nothing publishes to.
_PATTERN = re.compile(
    r"branch:(?P<branch>[1-9][0-9]{0,9}):(?P<topic>[a-z]+)(?::(?P<station>[a-z][a-z0-9_]{0,31}))?"
    r"|device:(?P<device>[1-9][0-9]{0,9})"
)


def branch_menu(branch_id: int) -> str:
    """The menu of a branch, with availability."""
    return f"branch:{branch_id}:menu"


def branch_kitchen(branch_id: int) -> str:
    """The kitchen queue of a branch."""
    return f"branch:{branch_id}:kitchen"


def branch_station(branch_id: int, station: str) -> str:
    """One kitchen station of a branch (`grill`): only the lines routed to it (every line for expo)."""
    return f"branch:{branch_id}:kitchen:{station}"


def branch_board(branch_id: int) -> str:
    """The order board of a branch (numbers preparing and ready)."""
    return f"branch:{branch_id}:board"


def branch_orders(branch_id: int) -> str:
    """Every order and payment event of a branch, for staff."""
    return f"branch:{branch_id}:orders"


def branch_devices(branch_id: int) -> str:
    """The devices of a branch and whether they are online."""
    return f"branch:{branch_id}:devices"


def device(device_id: int) -> str:
    """Everything addressed to one device."""
    return f"device:{device_id}"


def principal(key: str) -> str:
    """Where a change to a principal (`device:7`, `user:3`) is announced: its position moves with every change.

    The server pins what it knows of the principal there (server/auth/known_principals.py); `parse` refuses the
    name, so no client subscribes to it.
    """
    return f"principal:{key}"


@dataclass(frozen=True)
class ChannelName:
    """A parsed channel name: a branch topic (the kitchen of one `station`, maybe), or one device."""

    name: str
    branch_id: int | None
    topic: BranchTopic | None
    device_id: int | None
    station: str | None = None

    @property
    def kind(self) -> str:
        """`branch:<topic>`, `branch:station` or `device`: what decides the snapshot and who may subscribe."""
        if self.station is not None:
            return "branch:station"
        return f"branch:{self.topic}" if self.topic else "device"


def parse(name: object) -> ChannelName | None:
    """The parts of a valid channel name, None for anything else."""
    if not isinstance(name, str):
        return None
    match = _PATTERN.fullmatch(name)
    if match is None:
        return None
    if match["device"]:
        return ChannelName(name, None, None, int(match["device"]))
    topic = match["topic"]
    if topic not in BRANCH_TOPICS or (match["station"] and topic != "kitchen"):
        return None
    return ChannelName(name, int(match["branch"]), topic, None, match["station"])
