"""Device command handlers by area; `command_registry()` gathers them for `create_app`."""

from server.commands import carts, kitchen, menu, orders, payments, receipts, stations
from server.commands.router import CommandRegistry

AREAS = (menu, carts, orders, receipts, kitchen, stations, payments)


def command_registry() -> CommandRegistry:
    """Every device command: a new registry holding each area's handlers."""
    registry = CommandRegistry()
    for area in AREAS:
        registry.include(area.registry)
    return registry


__all__ = ["command_registry"]
