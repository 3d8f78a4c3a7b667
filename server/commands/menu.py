"""Menu commands over the socket: staff 86 an item (or bring it back) in their branch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update

from channels import names
from persistence.base import utcnow
from persistence.tables import ItemAvailability
from server.api.fields import RowId, invalid_field
from server.auth.permissions import Permission
from server.commands.router import CommandContext, CommandRegistry, Who
from server.errors import ApiError

registry = CommandRegistry()


class SetAvailable(BaseModel):
    """`item.set_available`: the item, on or off, and the branch (needed only by chain-wide users)."""

    model_config = ConfigDict(extra="forbid")

    item_id: RowId
    available: bool
    branch_id: RowId | None = Field(default=None, description="defaults to the sender's own branch")


class Availability(BaseModel):
    """An item as one branch offers it."""

    branch_id: int
    item_id: int
    available: bool
    stock: int | None


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
    branch_id = data.branch_id or ctx.principal.branch_id
    if branch_id is None:
        raise invalid_field("branch_id", "branch_id is required for users of no branch")
    ctx.principal.require_branch(branch_id)
    offer = ItemAvailability
    result = await ctx.session.execute(
        update(offer)
        .where(offer.branch_id == branch_id, offer.item_id == data.item_id)
        .values(available=data.available, updated_at=utcnow())
        .returning(offer.stock),
        execution_options={"synchronize_session": False},
    )
    stock = result.one_or_none()
    if stock is None:
        raise ApiError("not_found", f"branch {branch_id} does not offer item {data.item_id}", {"item_id": data.item_id})
    availability = Availability(branch_id=branch_id, item_id=data.item_id, available=data.available, stock=stock[0])
    ctx.emit(names.branch_menu(branch_id), "stock.changed", availability.model_dump())
    return availability
