"""The kitchen station each line of an order goes to, decided when the order is placed and kept on the line.

Read from the process's catalogue (server/orders/catalogue.py) at the version the cart was
read under: no statement at all once the branch's stations and the items are held, and
none but the stations' read for a branch without stations.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from server.orders.cart_pricing import PricedCart
from server.orders.cart_records import CartRecord
from server.orders.catalogue import catalogue_of


async def line_stations(session: AsyncSession, cart: CartRecord, priced: PricedCart) -> Callable[[int], str | None]:
    """For an item of the priced cart or of one of its combos, the code of the branch's station it goes to (None: no
    stations)."""
    catalogue = catalogue_of(session)
    kitchen = await catalogue.kitchen(session, cart.catalogue_version, cart.branch_id)
    if not kitchen:
        return lambda item_id: None
    # A combo's components are made where their own items go (server/domain/stations.py).
    item_ids = {line.line.item_id for line in priced.lines}
    item_ids |= {part.component.choice.item_id for line in priced.lines for part in line.components}
    items = await catalogue.items(session, cart.catalogue_version, item_ids)

    def station_of(item_id: int) -> str | None:
        item = items.get(item_id)
        station = kitchen.station_for(item.station if item is not None else None)
        return station.code if station is not None else None

    return station_of
