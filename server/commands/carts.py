"""Cart commands: a kiosk builds carts that the server stores and prices (PROTOCOL.md "Commands").

Every change answers with the whole priced cart and emits the same data as
`cart.updated` on the kiosk's `device:{d}` channel, so its other connections and a
reconnect (through the `device:{d}` snapshot) see it too.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints
from sqlalchemy import bindparam, select

from channels import names
from persistence.base import table
from persistence.enums import CartStatus, DeviceKind, ServiceMode
from persistence.prepared import Prepared
from persistence.tables import KnownCustomer
from server.commands.combo_lines import check_components, fill_combo, not_a_combo, stored
from server.commands.router import CommandContext, CommandRegistry, Who
from server.domain.combos import Pick
from server.domain.options import InvalidOptions, choose
from server.domain.phones import InvalidPhoneError, normalise_phone
from server.errors import ApiError
from server.orders import cart_rows
from server.orders.cart_pricing import Offer, offers, price_cart, quantities
from server.orders.cart_records import CartRecord
from server.payloads.cart import CartView
from server.validation import Input, Locale, RowId, locale_not_offered

registry = CommandRegistry()

KIOSKS = Who(devices=frozenset({DeviceKind.KIOSK}))
MAX_QTY = 99
MAX_LINES = 50
Qty = Annotated[int, Field(ge=1, le=MAX_QTY, strict=True)]
Phone = Annotated[str, Field(min_length=1, max_length=32)]
# The customer's words to the kitchen, kept as typed but for spaces around them (cart_lines.note holds 200).
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class CreateCart(Input):
    """`cart.create`: optionally the customer's phone (a known customer's), the service mode (left out: the
    branch's first) and the locale (left out: the connection's, else the branch's default)."""

    customer_phone: Phone | None = None
    service_mode: ServiceMode | None = None
    locale: Locale | None = None


class SetLocale(Input):
    """`cart.set_locale`: the customer switched language, to one the branch offers; the cart is named in it."""

    cart_id: RowId
    locale: Locale


class SetServiceMode(Input):
    """`cart.set_service_mode`: eat in or take away, as the branch offers them; the cart is priced again."""

    cart_id: RowId
    service_mode: ServiceMode


class ComponentIn(Input):
    """A combo's slot as the customer filled it: the item chosen, and that item's own choice ids (left out: its
    default choices)."""

    slot_id: RowId
    item_id: RowId
    choice_ids: list[RowId] | None = Field(default=None, max_length=50)


class AddToCart(Input):
    """`cart.add`: an item, how many, the picked choice ids (left out: the item's default choices), the customer's
    note for the kitchen ("no peanuts please"; left out: none), and for a combo its slots as filled (left out: each
    slot's default)."""

    cart_id: RowId
    item_id: RowId
    qty: Qty = 1
    options: list[RowId] | None = Field(default=None, max_length=50)
    note: Note | None = None
    components: list[ComponentIn] | None = Field(default=None, max_length=20)


class UpdateCartLine(Input):
    """`cart.update`: a line's new quantity; 0 removes the line."""

    cart_id: RowId
    line_id: RowId
    qty: Annotated[int, Field(ge=0, le=MAX_QTY, strict=True)]


class SetCustomer(Input):
    """`cart.set_customer`: the phone of a known customer, or null to take the customer off the cart."""

    cart_id: RowId
    phone: Phone | None


_CUSTOMERS = table(KnownCustomer)
_FIND_CUSTOMER = Prepared(
    select(_CUSTOMERS.c.id, _CUSTOMERS.c.name).where(
        _CUSTOMERS.c.phone == bindparam("phone"), _CUSTOMERS.c.is_active.is_(True)
    )
)


async def open_cart(
    ctx: CommandContext,
    cart_id: int,
    change: bool = True,
    customer: cart_rows.Customer | None = None,
    adding: int | None = None,
    service_mode: ServiceMode | None = None,
    adding_components: list[int] | None = None,
    locale: str | None = None,
) -> CartRecord:
    """The sender's cart `cart_id`, still open, locked with its lines; `not_found` for anyone else's, `conflict` once
    ordered or expired.

    `change`: the lock is the cart's change (touched, its version raised; with `customer`, that customer's id and
    phone attached, or none with `NO_CUSTOMER`). A refusal rolls it back with the rest of the command. `adding`: an
    item about to be added, whose level is read with the lines' items' (and `adding_components`, a combo's items).
    """
    cart = await cart_rows.lock_cart(
        ctx.session,
        cart_id,
        ctx.now() if change else None,
        customer,
        adding,
        service_mode,
        adding_components or (),
        locale,
    )
    if cart is None or cart.device_id != ctx.principal.id:
        raise ApiError("not_found", f"no cart {cart_id}", {"cart_id": cart_id})
    if cart.status != CartStatus.OPEN:
        raise ApiError(
            "conflict", f"cart {cart_id} is {cart.status.value}", {"cart_id": cart_id, "status": cart.status.value}
        )
    return cart


async def _customer(ctx: CommandContext, raw_phone: str, field: str) -> tuple[str, Any]:
    """The normalised phone and the active known customer with it (`id`, `name`)."""
    try:
        phone = normalise_phone(raw_phone)
    except InvalidPhoneError as exc:
        raise ApiError(
            "invalid", str(exc), {"errors": [{"field": field, "message": str(exc), "type": "phone"}]}
        ) from None
    customer = await _FIND_CUSTOMER.first(ctx.session, {"phone": phone})
    if customer is None:
        raise ApiError("not_found", f"no known customer with phone {phone}", {"phone": phone})
    return phone, customer


async def changed(ctx: CommandContext, cart: CartRecord, loaded: dict[int, Offer] | None = None) -> dict[str, Any]:
    """Price the cart after a change (`loaded`: offers already read), emit `cart.updated` to its kiosk and return
    its data."""
    priced = await price_cart(ctx.session, cart, loaded, ctx.menu_now())
    data = priced.data(ctx.settings.cart_idle_timeout)
    ctx.emit(names.device(cart.device_id), "cart.updated", data)
    return data


def out_of_stock(shortages: list[dict[str, Any]]) -> ApiError:
    """`out_of_stock` naming each short item: `item_id`, `name`, `requested`, `left` (0 when 86'd)."""
    listed = ", ".join(str(short["name"]) for short in shortages)
    return ApiError("out_of_stock", f"not enough left: {listed}", {"items": shortages})


async def cart_offers(
    ctx: CommandContext, cart: CartRecord, item_id: int, components: list[int] | None = None
) -> dict[int, Offer]:
    """The branch's offers of the cart's items (a combo's components too), of `item_id` and of `components`, read at
    once (to check and then price)."""
    wanted = quantities(cart.lines).keys() | {item_id} | set(components or ())
    return await offers(ctx.session, cart, wanted, ctx.menu_now())


def check_stock(loaded: dict[int, Offer], item_id: int, requested: int) -> Offer:
    """The branch's offer of the item; `not_found` when it is not on the menu, `out_of_stock` when too few are left
    or it is outside its daypart's window (`reason` "daypart", with the `window`)."""
    offer = loaded.get(item_id)
    if offer is None or not offer.offered:
        raise ApiError("not_found", f"item {item_id} is not on this branch's menu", {"item_id": item_id})
    if offer.closed is not None:
        closed = {"reason": "daypart", "window": offer.closed.data()}
        raise out_of_stock([{"item_id": item_id, "name": offer.name, "requested": requested, "left": 0, **closed}])
    left = 0 if not offer.available else offer.stock
    if left is not None and left < requested:
        raise out_of_stock([{"item_id": item_id, "name": offer.name, "requested": requested, "left": left}])
    return offer


@registry.command(
    "cart.create",
    CreateCart,
    who=KIOSKS,
    summary="Start a cart",
    reply=CartView,
    errors=("not_found", "invalid"),
)
async def create_cart(ctx: CommandContext, data: CreateCart) -> dict[str, Any]:
    """Start an empty cart for this kiosk, optionally for a known customer (`not_found` for an unknown phone)."""
    assert ctx.principal.branch_id is not None
    phone, customer_id = None, None
    if data.customer_phone is not None:
        phone, customer = await _customer(ctx, data.customer_phone, "customer_phone")
        customer_id = customer.id
    mode = data.service_mode or ServiceMode.EAT_IN
    # The connection's locale was one the branch offered at hello; the cart's own is checked once the branch is read.
    locale = data.locale or ctx.locale
    cart = await cart_rows.create_cart(
        ctx.session,
        ctx.principal.branch_id,
        ctx.principal.id,
        ctx.now(),
        customer_id,
        phone,
        service_mode=mode,
        locale=locale,
    )
    if data.locale is not None:
        require_locale(cart, data.locale)
    if data.service_mode is not None:
        require_offered(cart, data.service_mode)
    elif cart.service_mode != cart.service_modes[0]:
        # The branch's own default is not eat-in: the cart takes it (a branch without eat-in, say).
        cart = await open_cart(ctx, cart.id, service_mode=ServiceMode(cart.service_modes[0]))
    return await changed(ctx, cart)


@registry.command(
    "cart.set_service_mode",
    SetServiceMode,
    who=KIOSKS,
    summary="Eat in or take away: set a cart's service mode",
    reply=CartView,
    errors=("not_found", "conflict", "invalid"),
)
async def set_service_mode(ctx: CommandContext, data: SetServiceMode) -> dict[str, Any]:
    """Set the cart's service mode, one the branch offers; its lines are taxed at that mode's rates from now on."""
    cart = await open_cart(ctx, data.cart_id, service_mode=data.service_mode)
    require_offered(cart, data.service_mode)
    return await changed(ctx, cart)


@registry.command(
    "cart.set_locale",
    SetLocale,
    who=KIOSKS,
    summary="Switch a cart's language",
    reply=CartView,
    errors=("not_found", "conflict", "invalid"),
)
async def set_locale(ctx: CommandContext, data: SetLocale) -> dict[str, Any]:
    """Set the cart's locale, one the branch offers (`invalid`, type `locale_not_offered`, otherwise): its lines and
    options are named in it from now on, and so is the order placed from it (and its receipt)."""
    cart = await open_cart(ctx, data.cart_id, locale=data.locale)
    require_locale(cart, data.locale)
    return await changed(ctx, cart)


def require_locale(cart: CartRecord, locale: str) -> None:
    """`invalid` (type `locale_not_offered`) unless the cart's branch offers `locale` (checked after the cart's
    change: a refusal rolls it back)."""
    if locale not in cart.locales:
        raise locale_not_offered(locale, cart.locales)


def require_offered(cart: CartRecord, mode: ServiceMode) -> None:
    """`invalid` unless the cart's branch offers `mode` (checked after a cart's change: a refusal rolls it back)."""
    if mode not in cart.service_modes:
        message = f"this branch offers {', '.join(cart.service_modes)}, not {mode.value}"
        error = {"field": "service_mode", "message": message, "type": "service_mode"}
        raise ApiError("invalid", message, {"errors": [error], "service_modes": cart.service_modes})


@registry.command(
    "cart.add",
    AddToCart,
    who=KIOSKS,
    summary="Add an item with its options to a cart",
    reply=CartView,
    errors=("not_found", "conflict", "invalid", "out_of_stock"),
)
async def add_to_cart(ctx: CommandContext, data: AddToCart) -> dict[str, Any]:
    """Add `qty` of an item; the same item with the same options and the same note (or none) adds to its existing
    line: a note keeps its line apart from the item's lines without it or with another."""
    named = [component.item_id for component in data.components or ()]
    cart = await open_cart(ctx, data.cart_id, adding=data.item_id, adding_components=named)
    in_cart = quantities(cart.lines).get(data.item_id, 0)
    loaded = await cart_offers(ctx, cart, data.item_id, named)
    offer = check_stock(loaded, data.item_id, in_cart + data.qty)
    components: list[dict[str, Any]] = []
    if offer.slots:
        picks = None
        if data.components is not None:
            picks = [
                Pick(c.slot_id, c.item_id, None if c.choice_ids is None else tuple(c.choice_ids))
                for c in data.components
            ]
        filled = await fill_combo(ctx, cart, offer, picks, loaded)
        check_components(loaded, cart, offer, [c.choice.item_id for c in filled], data.qty)
        components = stored(filled)
    elif data.components:
        raise not_a_combo(data.item_id)
    try:
        chosen = choose(offer.groups, data.options)
    except InvalidOptions as exc:
        errors = [
            {"field": "options", "message": p.message, "type": p.rule, "choice_id": p.choice_id, "group_id": p.group_id}
            for p in exc.problems
        ]
        raise ApiError("invalid", f"invalid options: {exc}", {"errors": errors}) from None
    choice_ids = sorted(c.choice.id for c in chosen)
    same = next(
        (
            line
            for line in cart.lines
            if line.item_id == data.item_id
            and line.choice_ids == choice_ids
            and line.note == data.note
            and line.components == components
        ),
        None,
    )
    if same is not None:
        if same.qty + data.qty > MAX_QTY:
            raise ApiError("invalid", f"at most {MAX_QTY} of one line", {"line_id": same.id, "qty": same.qty})
        await cart_rows.set_qty(ctx.session, same, same.qty + data.qty)
    else:
        if len(cart.lines) >= MAX_LINES:
            raise ApiError("invalid", f"a cart holds at most {MAX_LINES} lines", {"cart_id": cart.id})
        await cart_rows.add_line(ctx.session, cart, data.item_id, data.qty, choice_ids, data.note, components)
    return await changed(ctx, cart, loaded)


@registry.command(
    "cart.update",
    UpdateCartLine,
    who=KIOSKS,
    summary="Change a cart line's quantity (0 removes it)",
    reply=CartView,
    errors=("not_found", "conflict", "invalid", "out_of_stock"),
)
async def update_cart_line(ctx: CommandContext, data: UpdateCartLine) -> dict[str, Any]:
    """Set a line's quantity, or remove the line with 0; more of an item is checked against its stock."""
    cart = await open_cart(ctx, data.cart_id)
    line = next((line for line in cart.lines if line.id == data.line_id), None)
    if line is None:
        raise ApiError("not_found", f"cart {cart.id} has no line {data.line_id}", {"line_id": data.line_id})
    loaded = None
    if data.qty == 0:
        await cart_rows.remove_line(ctx.session, cart, line)
    else:
        if data.qty > line.qty:
            in_cart = quantities(cart.lines).get(line.item_id, 0)
            loaded = await cart_offers(ctx, cart, line.item_id)
            combo = check_stock(loaded, line.item_id, in_cart - line.qty + data.qty)
            if line.components:
                check_components(loaded, cart, combo, line.component_items, data.qty, line.qty)
        await cart_rows.set_qty(ctx.session, line, data.qty)
    return await changed(ctx, cart, loaded)


@registry.command(
    "cart.set_customer",
    SetCustomer,
    who=KIOSKS,
    summary="Attach a known customer to a cart by phone",
    reply=CartView,
    errors=("not_found", "conflict", "invalid"),
)
async def set_customer(ctx: CommandContext, data: SetCustomer) -> dict[str, Any]:
    """Attach the known customer with this phone (their name goes on the ticket); null takes the customer off."""
    # The customer is looked up first, so that the cart's lock can attach them; a cart's own refusal still comes first.
    customer: cart_rows.Customer | None = cart_rows.NO_CUSTOMER
    refusal: ApiError | None = None
    if data.phone is not None:
        customer = None
        try:
            phone, found = await _customer(ctx, data.phone, "phone")
            customer = (found.id, phone)
        except ApiError as error:
            refusal = error
    cart = await open_cart(ctx, data.cart_id, customer=customer)
    if refusal is not None:
        raise refusal
    return await changed(ctx, cart)
