"""Orders, payments and carts count their changes in `version`, however the row is updated, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from persistence.base import flushed, table, utcnow
from persistence.database import Database
from persistence.enums import CartStatus, DeviceKind
from persistence.tables import Branch, Cart, Device


async def _cart(session: AsyncSession) -> Cart:
    """A new open cart of a new kiosk, flushed."""
    branch = Branch(name="Mitte", currency="EUR", timezone="Europe/Berlin")
    session.add(branch)
    await session.flush()
    kiosk = Device(branch_id=branch.id, kind=DeviceKind.KIOSK, name="Kiosk", secret_hash="x")
    session.add(kiosk)
    await session.flush()
    cart = Cart(branch_id=branch.id, device_id=kiosk.id, status=CartStatus.OPEN)
    session.add(cart)
    await session.flush()
    return cart


async def test_every_kind_of_update_raises_the_version_by_one_and_the_row_holds_it(db: Database) -> None:
    """Insert: 1. An ORM flush, a Core UPDATE and an ORM UPDATE statement each add 1 (the last two return it)."""
    async with db.session() as session:
        cart = await _cart(session)
        assert cart.version == 1

        cart.customer_phone = "+4930123456"
        await session.flush()
        assert cart.version == 2  # read back by the flush itself

        carts = table(Cart)
        core = update(carts).where(carts.c.id == cart.id).values(updated_at=utcnow()).returning(carts.c.version)
        assert (await session.execute(core)).scalar_one() == 3

        orm = update(Cart).where(Cart.id == cart.id).values(status=CartStatus.EXPIRED).returning(Cart.version)
        assert (await session.execute(orm)).scalar_one() == 4
    async with db.session() as session:
        assert await session.scalar(select(Cart.version).where(Cart.id == cart.id)) == 4


async def test_a_row_is_described_only_once_its_changes_are_flushed(db: Database) -> None:
    """Before the flush its version does not count the change yet: `flushed` refuses it; after, it passes."""
    async with db.session() as session:
        cart = await _cart(session)
        assert flushed(cart) is cart
        cart.status = CartStatus.ORDERED
        with pytest.raises(RuntimeError, match="unflushed"):
            flushed(cart)
        await session.flush()
        assert flushed(cart).version == 2
