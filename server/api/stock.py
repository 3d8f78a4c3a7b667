"""REST routes: which branches offer an item, whether it is on (not 86'd), and how many are left.

The first stock call for a branch creates its `items_live_available` row: the branch
now offers the item. Stock is `None` for unlimited. Adding to it (or writing it off with
a negative quantity) is one conditional UPDATE that never takes it below zero, the way
orders reserve it (persistence/stock.py): concurrent changes can never oversell.

Every change is announced on the `branch:{b}:menu` channel of the branch concerned:
`menu.item_updated` when the branch starts offering the item, `stock.changed` after.
`announce_items` tells every branch that offers an item how its menu now shows it, and how
it shows every combo offering the item in a slot (a combo's choices carry their items' names,
allergens, calories, options and availability); the item, category, daypart and combo routes
call it after their changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import CursorResult, bindparam, select, update

from channels import names
from persistence.base import table
from persistence.tables import Branch, ComboSlot, ComboSlotChoice, Item, ItemAvailability
from persistence.upsert import Upsert
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.payloads.menu import branch_item, closed_now, stock_changed
from server.validation import Input, RowId

router = ApiRouter("stock")

# Low enough that stock + quantity never overflows a 32-bit integer.
MAX_STOCK = 1_000_000_000


class StockOut(BaseModel):
    """An item as one branch offers it: on or 86'd, and how many are left (null: unlimited)."""

    model_config = ConfigDict(from_attributes=True)

    branch_id: int
    item_id: int
    available: bool
    stock: int | None
    updated_at: datetime


class StockChange(Input):
    """A change to an item's stock or availability in one branch."""

    model_config = ConfigDict(extra="forbid")

    branch_id: RowId
    mode: Literal["add", "set"] | None = Field(
        default=None,
        description='"set": stock becomes `quantity` (null: unlimited); "add": `quantity` is added (negative to'
        " write stock off); left out: only `available` changes",
    )
    quantity: int | None = Field(default=None, strict=True, ge=-MAX_STOCK, le=MAX_STOCK)
    available: bool | None = Field(default=None, description="false 86es the item in the branch, true brings it back")


async def load_item(call: Call[Any, Any]) -> Item:
    """The item the path's `item_id` names; `not_found` when there is none."""
    item_id = call.path_int("item_id")
    item = await call.session.get(Item, item_id)
    if item is None:
        raise not_found("item", item_id)
    return item


def _body_errors(change: StockChange) -> list[dict[str, str]]:
    """Where mode, quantity and available do not make one change."""

    def error(field: str, message: str) -> dict[str, str]:
        return {"field": field, "message": message, "type": "stock_change"}

    if change.mode is None:
        if change.quantity is not None:
            return [error("mode", 'a quantity needs a mode: "add" or "set"')]
        if change.available is None:
            return [error("available", "nothing to change: send mode and quantity, or available")]
    elif change.mode == "set":
        if "quantity" not in change.model_fields_set:
            return [error("quantity", 'required with mode "set" (null means unlimited)')]
        if change.quantity is not None and change.quantity < 0:
            return [error("quantity", 'must be 0 or more with mode "set" (null means unlimited)')]
    elif change.quantity is None:
        return [error("quantity", 'a number is required with mode "add"')]
    return []


async def announce_items(call: Call[Any, Any], item_ids: Iterable[int]) -> None:
    """Tell every branch offering these items how its menu shows each now: `menu.item_updated` or `menu.item_removed`.

    The combos offering any of them in a slot are announced too. Call it after the change is flushed, so that the
    events carry what was written.
    """
    changed = set(item_ids)
    combos = await call.session.scalars(
        select(ComboSlot.item_id)
        .join(ComboSlotChoice, ComboSlotChoice.slot_id == ComboSlot.id)
        .where(ComboSlotChoice.item_id.in_(changed))
    )
    offers = await call.session.execute(
        select(ItemAvailability.branch_id, ItemAvailability.item_id)
        .where(ItemAvailability.item_id.in_(changed | set(combos)))
        .order_by(ItemAvailability.item_id, ItemAvailability.branch_id)
    )
    for branch_id, item_id in offers.all():
        await _announce_item(call, branch_id, item_id)


async def _announce_item(call: Call[Any, Any], branch_id: int, item_id: int) -> None:
    item = await branch_item(call.session, branch_id, item_id)
    if item is None:
        call.emit(names.branch_menu(branch_id), "menu.item_removed", {"branch_id": branch_id, "item_id": item_id})
    else:
        call.emit(names.branch_menu(branch_id), "menu.item_updated", item)


_OFFER = Upsert(
    lambda insert: (
        insert(table(ItemAvailability))
        .values(
            branch_id=bindparam("b_branch_id"),
            item_id=bindparam("b_item_id"),
            available=bindparam("b_available"),
            stock=bindparam("b_stock"),
        )
        .on_conflict_do_nothing()
    )
)


async def _offer(call: Call[StockChange, None], item_id: int) -> bool:
    """Create the branch's row for the item unless it exists (True when created); a concurrent creator is no error."""
    change = call.body
    values = {
        "b_branch_id": change.branch_id,
        "b_item_id": item_id,
        "b_available": True if change.available is None else change.available,
        "b_stock": 0 if change.mode == "add" else None,
    }
    result = await _OFFER.execute(call.session, values)
    return cast(CursorResult[Any], result).rowcount == 1


@router.post(
    "/items/{item_id}/stock",
    "Change stock",
    permission=Permission.STOCK_WRITE,
    body=StockChange,
    response=StockOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def change_stock(call: Call[StockChange, None]) -> StockOut:
    """Set or add to an item's stock in a branch, or 86 it; the first call makes the branch offer the item.

    Adding never takes the stock below zero: `conflict` (with the current stock) instead.
    Adding to an unlimited stock is `invalid`: set a number first. The branch's kiosks hear
    `menu.item_updated` (the whole item) when the branch starts offering it, `stock.changed` after.
    """
    item = await load_item(call)
    change = call.body
    call.principal.require_branch(change.branch_id)
    if item.deleted_at is not None:
        raise ApiError("conflict", f"item {item.id} is deleted", {"item_id": item.id})
    errors = _body_errors(change)
    if await call.session.get(Branch, change.branch_id) is None:
        errors.append({"field": "branch_id", "message": f"branch {change.branch_id} does not exist", "type": "unknown"})
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})

    created = await _offer(call, item.id)
    offer = ItemAvailability
    statement = update(offer).where(offer.branch_id == change.branch_id, offer.item_id == item.id)
    if change.available is not None:
        statement = statement.values(available=change.available)
    if change.mode == "set":
        statement = statement.values(stock=change.quantity)
    elif change.mode == "add" and change.quantity is not None:
        # One conditional UPDATE: the database decides, so concurrent write-offs can never go below zero.
        statement = statement.values(stock=offer.stock + change.quantity).where(
            offer.stock.is_not(None), (offer.stock + change.quantity).between(0, MAX_STOCK)
        )
    result = await call.session.execute(
        statement.returning(offer), execution_options={"synchronize_session": False, "populate_existing": True}
    )
    changed = result.scalar_one_or_none()
    if changed is None:
        raise await _add_refused(call, item.id)
    if created:
        await _announce_item(call, change.branch_id, item.id)
    else:
        in_window = item.id not in await closed_now(call.session, change.branch_id, [item.id])
        data = stock_changed(change.branch_id, item.id, changed.available, changed.stock, in_window)
        call.emit(names.branch_menu(change.branch_id), "stock.changed", data)
    return StockOut.model_validate(changed)


async def _add_refused(call: Call[StockChange, None], item_id: int) -> ApiError:
    """Why adding changed nothing: the stock is unlimited, or would leave its bounds."""
    change = call.body
    current = await call.session.scalar(
        select(ItemAvailability.stock).where(
            ItemAvailability.branch_id == change.branch_id, ItemAvailability.item_id == item_id
        )
    )
    if current is None:
        return ApiError(
            "invalid",
            "the stock is unlimited: there is nothing to add to",
            {"errors": [{"field": "mode", "message": 'set a number first with mode "set"', "type": "stock_unlimited"}]},
        )
    details = {"stock": current, "quantity": change.quantity, "branch_id": change.branch_id, "item_id": item_id}
    if current + (change.quantity or 0) < 0:
        return ApiError("conflict", f"not enough stock: {current} left", details)
    return ApiError("conflict", f"stock would exceed {MAX_STOCK}", {**details, "max_stock": MAX_STOCK})


@router.get(
    "/items/{item_id}/stock",
    "List an item's stock",
    permission=Permission.MENU_READ,
    query=PageQuery,
    response=Page[StockOut],
    errors=("unauthorized", "forbidden", "not_found", "invalid"),
)
async def list_stock(call: Call[None, PageQuery]) -> Page[StockOut]:
    """The branches that offer the item (those the caller may see), by branch id, with availability and stock."""
    item = await load_item(call)
    statement = select(ItemAvailability).where(ItemAvailability.item_id == item.id).order_by(ItemAvailability.branch_id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(ItemAvailability.branch_id == scope)
    rows, total = await fetch_page(call.session, statement, call.query)
    return Page[StockOut](
        items=[StockOut.model_validate(row) for row in rows],
        total=total,
        limit=call.query.limit,
        offset=call.query.offset,
    )
