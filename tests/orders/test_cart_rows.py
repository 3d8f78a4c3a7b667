"""Cart records (server/orders/cart_rows.py): each statement's reads and writes, on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from persistence.base import utcnow
from persistence.enums import CartStatus
from persistence.stock import Level
from persistence.tables import Cart, CartLine, ItemAvailability, KnownCustomer
from server.orders import cart_rows
from server.orders.cart_pricing import offers
from server.orders.catalogue import read_items
from tests.shop import Shop


async def _customer_id(shop: Shop) -> int:
    async with shop.services.db.session() as session:
        customer_id = await session.scalar(select(KnownCustomer.id))
    assert customer_id is not None
    return customer_id


async def test_a_created_cart_comes_back_with_its_branch_and_customer(shop: Shop) -> None:
    """The INSERT returns the new cart at version 1 with the branch's currency, tax rate and time zone, and the
    attached customer's name; without a customer, none."""
    customer_id = await _customer_id(shop)
    now = utcnow()
    async with shop.services.db.session() as session:
        plain = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        known = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now, customer_id, "+4930123456")
    assert (plain.version, plain.status, plain.updated_at, plain.lines) == (1, CartStatus.OPEN, now, [])
    assert (plain.currency, plain.tax_rate_bp, plain.timezone) == ("EUR", 1900, "Europe/Berlin")
    assert (plain.customer_id, plain.customer_name) == (None, None)
    assert (known.customer_id, known.customer_phone, known.customer_name) == (customer_id, "+4930123456", "Ana")
    async with shop.services.db.session() as session:
        stored = await session.get(Cart, known.id)
    assert stored is not None and (stored.version, stored.created_at, stored.updated_at) == (1, now, now)


async def test_a_lock_that_touches_raises_the_version_once_and_a_plain_lock_changes_nothing(shop: Shop) -> None:
    """Touching sets `updated_at` and raises the version by one; a plain lock reads the cart as it is; an unknown
    cart is None either way."""
    created = utcnow() - timedelta(minutes=5)
    later = created + timedelta(minutes=1)
    async with shop.services.db.session() as session:
        cart = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, created)
    async with shop.services.db.session() as session:
        touched = await cart_rows.lock_cart(session, cart.id, later)
    async with shop.services.db.session() as session:
        locked = await cart_rows.lock_cart(session, cart.id)
        assert await cart_rows.lock_cart(session, cart.id + 1000) is None
        assert await cart_rows.lock_cart(session, cart.id + 1000, later) is None
    assert touched is not None and (touched.version, touched.updated_at) == (2, later)
    assert touched.currency == "EUR"
    assert locked is not None and (locked.version, locked.updated_at) == (2, later)


async def test_a_touch_attaches_and_takes_off_a_customer(shop: Shop) -> None:
    """With a customer the touch attaches its id and phone (the name read with them); `NO_CUSTOMER` clears both;
    a plain touch leaves them."""
    customer_id = await _customer_id(shop)
    now = utcnow()
    async with shop.services.db.session() as session:
        cart = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        attached = await cart_rows.lock_cart(session, cart.id, now, (customer_id, "+4930123456"))
        kept = await cart_rows.lock_cart(session, cart.id, now)
        cleared = await cart_rows.lock_cart(session, cart.id, now, cart_rows.NO_CUSTOMER)
    assert attached is not None and kept is not None and cleared is not None
    assert (attached.customer_id, attached.customer_phone, attached.customer_name, attached.version) == (
        customer_id,
        "+4930123456",
        "Ana",
        2,
    )
    assert (kept.customer_id, kept.customer_name, kept.version) == (customer_id, "Ana", 3)
    assert (cleared.customer_id, cleared.customer_phone, cleared.customer_name) == (None, None, None)
    assert cleared.version == 4


async def test_line_writes_change_the_database_and_the_record_alike(shop: Shop) -> None:
    """Adding, raising and removing lines: the record's lines are what a fresh read finds, oldest first, notes
    included."""
    now = utcnow()
    picked = [shop.choices["Large"], shop.choices["Cheese"]]
    async with shop.services.db.session() as session:
        cart = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        await cart_rows.add_line(session, cart, shop.cola, 1, [])
        await cart_rows.add_line(session, cart, shop.burger, 2, picked, "no peanuts please")
        await cart_rows.add_line(session, cart, shop.fries, 3, [])
        await cart_rows.set_qty(session, cart.lines[0], 4)
        await cart_rows.remove_line(session, cart, cart.lines[2])
    async with shop.services.db.session() as session:
        read = await cart_rows.lock_cart(session, cart.id)
    assert read is not None and read.lines == cart.lines
    assert [(line.item_id, line.qty, line.choice_ids, line.note) for line in read.lines] == [
        (shop.cola, 4, [], None),
        (shop.burger, 2, picked, "no peanuts please"),
    ]
    assert read.lines[0].id < read.lines[1].id


async def test_an_ordered_cart_has_its_new_status_version_and_time(shop: Shop) -> None:
    """`mark_ordered` moves the cart to `ordered` and raises its version, its lines kept."""
    created = utcnow() - timedelta(minutes=1)
    now = utcnow()
    async with shop.services.db.session() as session:
        cart = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, created)
        await cart_rows.add_line(session, cart, shop.cola, 1, [])
        ordered = await cart_rows.mark_ordered(session, cart, now)
    assert (ordered.status, ordered.version, ordered.updated_at, ordered.lines) == (
        CartStatus.ORDERED,
        2,
        now,
        cart.lines,
    )
    async with shop.services.db.session() as session:
        stored = await session.get(Cart, cart.id)
    assert stored is not None and (stored.status, stored.version) == (CartStatus.ORDERED, 2)


async def test_several_carts_get_each_their_own_lines(shop: Shop) -> None:
    """`with_lines` gives each cart its lines (none for a cart without), in the carts' order; no carts, none."""
    now = utcnow()
    async with shop.services.db.session() as session:
        first = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        empty = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        last = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk2.id, now)
        await cart_rows.add_line(session, last, shop.fries, 1, [])
        await cart_rows.add_line(session, first, shop.cola, 2, [])
        await cart_rows.add_line(session, last, shop.cola, 3, [], "no ice")
    async with shop.services.db.session() as session:
        assert await cart_rows.with_lines(session, []) == []
        rows = (await session.execute(select(*cart_rows.CART_COLUMNS).order_by(Cart.id.desc()))).all()
        records = await cart_rows.with_lines(session, rows)
        count = len((await session.scalars(select(CartLine))).all())
    assert [record.id for record in records] == [last.id, empty.id, first.id]
    assert [record.lines for record in records] == [last.lines, [], first.lines]
    assert [line.note for line in records[0].lines] == [None, "no ice"]
    assert records[0].levels == {
        shop.fries: Level(shop.fries, True, 10),
        shop.cola: Level(shop.cola, True, None),
    }
    assert (records[1].levels, records[2].levels) == ({}, {shop.cola: Level(shop.cola, True, None)})
    assert count == 3


async def test_a_locked_cart_has_the_levels_of_its_items_and_of_the_item_being_added(shop: Shop) -> None:
    """The lines come back oldest first, with the branch's level of each item and of `also`; an item the branch does
    not offer (its row taken away here) has none."""
    now = utcnow()
    async with shop.services.db.session() as session:
        cart = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        await cart_rows.add_line(session, cart, shop.fries, 2, [])
        await cart_rows.add_line(session, cart, shop.cola, 1, [])
        await session.execute(delete(ItemAvailability).where(ItemAvailability.item_id == shop.cola))
    async with shop.services.db.session() as session:
        locked = await cart_rows.lock_cart(session, cart.id, now, also=shop.burger)
        alone = await cart_rows.lock_cart(session, cart.id, now)
    assert locked is not None and alone is not None
    assert locked.lines == alone.lines == cart.lines
    assert locked.levels == {shop.fries: Level(shop.fries, True, 10), shop.burger: Level(shop.burger, True, None)}
    assert alone.levels == {shop.fries: Level(shop.fries, True, 10)}


async def test_catalogue_items_are_read_for_any_count(shop: Shop) -> None:
    """One, two and three items (a statement for each count) read the same items; an unknown item is left out."""
    async with shop.services.db.session() as session:
        every = await read_items(session, [shop.cola, shop.burger, shop.fries])
        two = await read_items(session, [shop.fries, shop.cola, shop.cola])
        one = await read_items(session, [shop.burger, 999999])
        none = await read_items(session, [])
    assert set(every) == {shop.cola, shop.burger, shop.fries}
    assert two == {shop.fries: every[shop.fries], shop.cola: every[shop.cola]}
    assert one == {shop.burger: every[shop.burger]}
    assert none == {}
    assert [group.name for group in every[shop.burger].groups] == ["Size", "Extras"]
    assert [(item.name, item.price, item.on_menu) for item in (every[shop.fries], every[shop.cola])] == [
        ("Fries", 350, True),
        ("Cola", 300, True),
    ]


async def test_an_offer_is_the_catalogue_item_with_its_level(shop: Shop) -> None:
    """An offer carries the item's price and groups and its level in the branch; an item the branch does not offer
    is not offered, and one 86'd is offered but not available."""
    now = utcnow()
    async with shop.services.db.session() as session:
        cart = await cart_rows.create_cart(session, shop.branch_id, shop.kiosk.id, now)
        await cart_rows.add_line(session, cart, shop.fries, 1, [])
        await session.execute(delete(ItemAvailability).where(ItemAvailability.item_id == shop.cola))
        await session.execute(
            update(ItemAvailability).where(ItemAvailability.item_id == shop.burger).values(available=False)
        )
    async with shop.services.db.session() as session:
        locked = await cart_rows.lock_cart(session, cart.id, now, also=shop.burger)
        assert locked is not None
        found = await offers(session, locked, [shop.fries, shop.burger, shop.cola])
    fries, burger, cola = found[shop.fries], found[shop.burger], found[shop.cola]
    assert (fries.price, fries.offered, fries.available, fries.stock) == (350, True, True, 10)
    assert (burger.offered, burger.available, [group.name for group in burger.groups]) == (
        True,
        False,
        ["Size", "Extras"],
    )
    assert (cola.offered, cola.available) == (False, False)
