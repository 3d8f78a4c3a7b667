"""`cart.add` of a combo: its slots filled as the kiosk sent them (or with their defaults), checked and stocked.

The combo's components are items of their own: each must be one of its slot's choices, with options that fit it
(`invalid`, field `components`, a stable `type` per problem: server/domain/combos.py), and each must be sold now,
with enough left for the whole cart (`out_of_stock` naming the component, with the combo as `combo_item_id`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from persistence.stock import levels_of
from server.commands.router import CommandContext
from server.domain.combos import Component, InvalidComponents, Pick, default_picks, fill
from server.errors import ApiError
from server.orders.cart_pricing import Offer, offers, quantities, sale_problem
from server.orders.cart_records import CartRecord


def not_a_combo(item_id: int) -> ApiError:
    """`invalid`: components sent for an item without slots."""
    message = f"item {item_id} is not a combo: it takes no components"
    error = {"field": "components", "message": message, "type": "not_a_combo"}
    return ApiError("invalid", message, {"errors": [error]})


async def fill_combo(
    ctx: CommandContext, cart: CartRecord, offer: Offer, picks: Sequence[Pick] | None, loaded: dict[int, Offer]
) -> list[Component]:
    """The combo's slots filled with `picks` (None: the defaults), checked; the offers of the items they take are
    added to `loaded` (read, with their levels, when the cart's lock did not read them)."""
    wanted = list(picks) if picks is not None else default_picks(offer.slots)
    unread = {pick.item_id for pick in wanted} - loaded.keys()
    if unread:
        # The defaults' items, which the kiosk did not name: one statement more for their levels.
        read = {line.item_id for line in cart.lines} | {i for line in cart.lines for i in line.component_items}
        cart.levels.update(await levels_of(ctx.session, cart.branch_id, sorted(unread - read)))
        loaded.update(await offers(ctx.session, cart, unread, ctx.menu_now()))
    groups = {item_id: o.groups for item_id, o in loaded.items()}
    try:
        return fill(offer.slots, wanted if picks is not None else None, groups)
    except InvalidComponents as exc:
        errors = [
            {
                "field": "components",
                "message": p.message,
                "type": p.rule,
                "slot_id": p.slot_id,
                "item_id": p.item_id,
                "choice_id": p.choice_id,
            }
            for p in exc.problems
        ]
        raise ApiError("invalid", f"invalid components: {exc}", {"errors": errors}) from None


def check_components(
    loaded: dict[int, Offer], cart: CartRecord, combo: Offer, items: Sequence[int], qty: int, left_out: int = 0
) -> None:
    """`out_of_stock` unless each of these component items is sold now with enough left for the cart and `qty` more
    of the combo (`left_out`: how many the cart holds that no longer count, a line being changed)."""
    in_cart = quantities(cart.lines)
    shortages: list[dict[str, Any]] = []
    for item_id in dict.fromkeys(items):
        requested = in_cart.get(item_id, 0) - left_out * items.count(item_id) + qty * items.count(item_id)
        offer = loaded.get(item_id)
        problem = sale_problem(offer, requested, component=True)
        if problem is None:
            continue
        name = offer.name if offer is not None else f"item {item_id}"
        short: dict[str, Any] = {
            "item_id": item_id,
            "name": name,
            "requested": requested,
            "combo_item_id": combo.item_id,
        }
        if problem.window is not None:
            short |= {"left": 0, "reason": "daypart", "window": problem.window.data()}
        else:
            left = offer.stock if offer is not None and offer.offered and offer.available else 0
            short["left"] = 0 if left is None else left
        shortages.append(short)
    if shortages:
        listed = ", ".join(str(short["name"]) for short in shortages)
        raise ApiError("out_of_stock", f"not enough left: {listed}", {"items": shortages})


def stored(components: Sequence[Component]) -> list[dict[str, Any]]:
    """The components as a cart line keeps them."""
    return [{"slot_id": c.slot.id, "item_id": c.choice.item_id, "choice_ids": c.choice_ids} for c in components]
