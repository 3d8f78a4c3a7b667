"""A cart as its kiosk sees it: the reply of every cart command, `cart.updated`, and the `device:{d}` snapshot.

Built from a priced cart (server/orders/cart_pricing.py, `PricedCart.data`), never by hand; its names are in the
cart's locale, falling back to the branch's default, then to the base names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from persistence.enums import CartStatus, ServiceMode
from server.payloads.moment import Moment
from server.payloads.taxes import RateTaxView


class ChosenOption(BaseModel):
    """An option chosen on a cart or order line: the choice, its group, and its price delta in minor units."""

    model_config = ConfigDict(extra="forbid")

    choice_id: int
    group_id: int
    group: str = Field(description="the option group's name")
    name: str = Field(description="the choice's name")
    price_delta: int


class LineComponent(BaseModel):
    """A filled slot of a combo line (cart or order): the slot, the item in it, its upcharge and that item's options.
    Each names its own `item_id`: the kitchen makes it as that item."""

    model_config = ConfigDict(extra="forbid")

    slot_id: int
    slot: str = Field(description="the slot's name (Main, Side, Drink)")
    item_id: int = Field(description="the item filling the slot")
    name: str = Field(description="that item's name")
    upcharge: int = Field(description="what it adds to the combo's price, in minor units (0 or more)")
    options: list[ChosenOption] = Field(description="that item's chosen options (a drink's size), with their deltas")


ProblemCode = Literal["removed", "unavailable", "out_of_stock", "options"]


class CartLineProblem(BaseModel):
    """Why an open cart's line cannot be ordered as it is right now."""

    model_config = ConfigDict(extra="forbid")

    code: ProblemCode = Field(
        description="the item left the menu, was 86'd, fewer are left than the cart holds, or its options no longer fit"
    )
    message: str


class CartLineView(BaseModel):
    """A cart line priced from today's menu: `unit_price` is `item_price` plus the options' deltas (and, for a combo,
    its components' upcharges and their options' deltas)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    item_id: int
    name: str
    qty: int
    item_price: int
    options: list[ChosenOption]
    unit_price: int
    line_total: int = Field(description="unit_price × qty")
    tax_rate_bp: int = Field(description="the rate the line is taxed at, in basis points, in the cart's service mode")
    note: str | None = Field(description="what the customer asked the kitchen to mind (allergies); null: nothing")
    components: list[LineComponent] = Field(
        default_factory=list, description="a combo's filled slots, in slot order; empty for any other item"
    )
    problem: CartLineProblem | None


class CartCustomer(BaseModel):
    """The known customer attached to a cart by phone."""

    model_config = ConfigDict(extra="forbid")

    id: int
    name: str


class CartView(BaseModel):
    """A cart priced by the server; money in minor units of `currency`, tax included in `total`."""

    model_config = ConfigDict(extra="forbid")

    id: int
    version: int = Field(description="raised by every change of the cart: keep the newest, ignore an older one")
    status: CartStatus
    branch_id: int
    device_id: int
    currency: str
    service_mode: ServiceMode = Field(description="eat in or take away: decides the lines' tax rates")
    locale: str = Field(
        default="en",
        description="the language its lines' and options' names are in: the cart's, else the branch's default",
    )
    customer_phone: str | None = Field(description="the phone attached to the cart, normalised")
    customer: CartCustomer | None
    lines: list[CartLineView]
    subtotal: int = Field(description="total minus tax: the net amount")
    tax: int
    taxes: list[RateTaxView] = Field(description="the tax per rate, lowest rate first")
    total: int = Field(description="the sum of the line totals: what the customer pays")
    updated_at: Moment
    expires_at: Moment = Field(description="when the cart idles out unless it changes before")
