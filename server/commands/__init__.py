"""Device command handlers by area; `registry` holds them all."""

from server.commands import carts, kitchen, menu, orders, payments
from server.commands.router import CommandRegistry

registry = CommandRegistry()
registry.include(menu.registry)
registry.include(carts.registry)
registry.include(orders.registry)
registry.include(kitchen.registry)
registry.include(payments.registry)

__all__ = ["registry"]
