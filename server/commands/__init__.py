"""Device command handlers by area; `registry` holds them all."""

from server.commands import menu
from server.commands.router import CommandRegistry

registry = CommandRegistry()
registry.include(menu.registry)

__all__ = ["registry"]
