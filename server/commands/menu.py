"""Menu commands over the socket: read a branch's menu, and staff 86 an item (or bring it back) in their branch."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update

from channels import names
from persistence.enums import DeviceKind
from persistence.tables import Branch, ItemAvailability
from server.auth.permissions import Permission
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ApiError, not_found
from server.payloads.menu import MenuSnapshot, branch_menu, closed_now, stock_changed
from server.validation import Input, Locale, RowId, invalid_field, locale_not_offered

registry = CommandRegistry()


def _branch(ctx: CommandContext, branch_id: int | None) -> int:
    """The branch a command acts in: the one named, else the sender's own; `forbidden` outside the sender's branch."""
    branch_id = branch_id or ctx.principal.branch_id
    if branch_id is None:
        raise invalid_field("branch_id", "branch_id is required for users of no branch")
    ctx.principal.require_branch(branch_id)
    return branch_id


class GetMenu(Input):
    """`menu.get`: nothing, or the branch (needed only by chain-wide users) and the locale."""

    branch_id: RowId | None = Field(default=None, description="defaults to the sender's own branch")
    locale: Locale | None = Field(
        default=None, description="one the branch offers; defaults to the connection's, else the branch's default"
    )


@registry.command(
    "menu.get",
    GetMenu,
    who=Who(devices=frozenset({DeviceKind.KIOSK, DeviceKind.KITCHEN_DISPLAY}), permission=Permission.MENU_READ),
    summary="Read the branch's menu with availability",
    reply=MenuSnapshot,
    errors=("not_found", "forbidden", "invalid"),
    read_only=True,
)
async def get_menu(ctx: CommandContext, data: GetMenu) -> dict[str, Any]:
    """The branch's menu, exactly as the `branch:{b}:menu` snapshot shows it: categories and items in display order."""
    branch_id = _branch(ctx, data.branch_id)
    branch = await ctx.session.get(Branch, branch_id)
    if branch is None:
        raise not_found("branch", branch_id)
    if data.locale is not None and data.locale not in branch.locales:
        raise locale_not_offered(data.locale, branch.locales)
    return await branch_menu(ctx.session, branch_id, ctx.menu_now(), locale=data.locale or ctx.locale)


class SetAvailable(Input):
    """`item.set_available`: the item, on or off, and the branch (needed only by chain-wide users)."""

    item_id: RowId
    available: bool
    branch_id: RowId | None = Field(default=None, description="defaults to the sender's own branch")


class Availability(BaseModel):
    """An item as one branch offers it; also the data of `stock.changed`."""

    model_config = ConfigDict(extra="forbid")

    branch_id: int
    item_id: int
    available: bool = Field(description="false when staff 86'd the item in the branch")
    stock: int | None = Field(description="how many are left; null when the branch does not count them")
    orderable: bool = Field(
        description="available, stock null or above 0 and inside its dayparts: whether a kiosk may sell it now"
    )


@registry.command(
    "item.set_available",
    SetAvailable,
    who=Who(permission=Permission.STOCK_WRITE),
    summary="86 an item in a branch, or bring it back",
    reply=Availability,
    errors=("not_found", "forbidden", "invalid"),
)
async def set_available(ctx: CommandContext, data: SetAvailable) -> Availability:
    """Turn an item on or off in a branch; every kiosk of the branch hears `stock.changed` at once."""
    branch_id = _branch(ctx, data.branch_id)
    offer = ItemAvailability
    result = await ctx.session.execute(
        update(offer)
        .where(offer.branch_id == branch_id, offer.item_id == data.item_id)
        .values(available=data.available, updated_at=ctx.now())
        .returning(offer.stock),
        execution_options={"synchronize_session": False},
    )
    stock = result.one_or_none()
    if stock is None:
        raise ApiError("not_found", f"branch {branch_id} does not offer item {data.item_id}", {"item_id": data.item_id})
    in_window = data.item_id not in await closed_now(ctx.session, branch_id, [data.item_id], ctx.menu_now())
    changed = stock_changed(branch_id, data.item_id, data.available, stock[0], in_window)
    ctx.emit(names.branch_menu(branch_id), "stock.changed", changed)
    return Availability(**changed)
