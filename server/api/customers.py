"""REST routes: known customers, recognised by phone number across the whole chain.

Phones are stored in E.164 (server/domain/phones.py), so any way of typing a number finds
the same customer. Deleting only deactivates: orders keep their customer, and the row can
be switched back on with a PATCH.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from persistence.tables import KnownCustomer
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.domain.phones import normalise_phone
from server.errors import ApiError, not_found
from server.validation import Input

router = ApiRouter("customers")

# Catches typos (no "@", spaces, no domain); only a sent message would prove an address real.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Room for separators around the at most 16 characters of an E.164 number.
PHONE_INPUT_MAX = 40


class CustomerOut(BaseModel):
    """A known customer."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    phone: str = Field(description="E.164, e.g. +4930123456")
    name: str
    email: str | None
    notes: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


def _phone(value: str | None) -> str | None:
    return None if value is None else normalise_phone(value)


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.fullmatch(value):
        raise ValueError("not an email address")
    return value


class CustomerCreate(Input):
    """A new known customer; the phone may be typed with spaces, dashes, dots, parentheses or 00."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str = Field(max_length=PHONE_INPUT_MAX, description="international, e.g. +49 30 123456 or 0049 30 123456")
    name: str = Field(min_length=1, max_length=120)
    email: str | None = Field(default=None, max_length=255)
    notes: str | None = Field(default=None, max_length=500)

    _normalise_phone = field_validator("phone")(_phone)
    _check_email = field_validator("email")(_email)


class CustomerUpdate(PatchBody):
    """The fields of a customer that may change; only those sent are applied, null clears email and notes."""

    clearable = frozenset({"email", "notes"})

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = Field(default=None, max_length=PHONE_INPUT_MAX)
    name: str | None = Field(default=None, min_length=1, max_length=120)
    email: str | None = Field(default=None, max_length=255)
    notes: str | None = Field(default=None, max_length=500)
    is_active: bool | None = None

    _normalise_phone = field_validator("phone")(_phone)
    _check_email = field_validator("email")(_email)


class CustomerQuery(PageQuery):
    """Filters of the customer list."""

    phone: str | None = Field(default=None, max_length=PHONE_INPUT_MAX, description="exact number, any formatting")
    q: str | None = Field(default=None, min_length=1, max_length=120, description="part of the name, any case")
    is_active: bool | None = None

    _normalise_phone = field_validator("phone")(_phone)


class CustomerLookup(Input):
    """The phone number to look up."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=PHONE_INPUT_MAX)

    _normalise_phone = field_validator("phone")(_phone)


async def _load(call: Call[Any, Any]) -> KnownCustomer:
    """The customer of the path, or `not_found`."""
    customer_id = call.path_int("customer_id")
    customer = await call.session.get(KnownCustomer, customer_id)
    if customer is None:
        raise not_found("customer", customer_id)
    return customer


async def _refuse_taken_phone(call: Call[Any, Any], phone: str) -> None:
    """`conflict` naming the customer who already has `phone` (active or not)."""
    holder = await call.session.scalar(select(KnownCustomer).where(KnownCustomer.phone == phone))
    if holder is not None:
        raise ApiError(
            "conflict",
            f"customer {holder.id} already has phone {phone}",
            {"field": "phone", "customer_id": holder.id, "is_active": holder.is_active},
        )


async def _out(call: Call[Any, Any], customer: KnownCustomer) -> CustomerOut:
    """The customer as `CustomerOut`, its pending changes written first so that id and timestamps are set."""
    await call.session.flush()
    return CustomerOut.model_validate(customer)


@router.get(
    "/customers",
    "List customers",
    permission=Permission.CUSTOMERS_READ,
    query=CustomerQuery,
    response=Page[CustomerOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_customers(call: Call[None, CustomerQuery]) -> Page[CustomerOut]:
    """Known customers by id, optionally by exact phone (any formatting) or part of the name."""
    statement = select(KnownCustomer).order_by(KnownCustomer.id)
    if call.query.phone is not None:
        statement = statement.where(KnownCustomer.phone == call.query.phone)
    if call.query.q is not None:
        statement = statement.where(KnownCustomer.name.icontains(call.query.q, autoescape=True))
    if call.query.is_active is not None:
        statement = statement.where(KnownCustomer.is_active == call.query.is_active)
    customers, total = await fetch_page(call.session, statement, call.query)
    items = [CustomerOut.model_validate(customer) for customer in customers]
    return Page[CustomerOut](items=items, total=total, limit=call.query.limit, offset=call.query.offset)


# Declared before /customers/{customer_id}, which would otherwise take "lookup" for an id.
@router.get(
    "/customers/lookup",
    "Look a customer up by phone",
    permission=Permission.CUSTOMERS_READ,
    query=CustomerLookup,
    response=CustomerOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found"),
)
async def lookup_customer(call: Call[None, CustomerLookup]) -> CustomerOut:
    """The active customer with this phone number (any formatting), or `not_found`."""
    phone = call.query.phone
    customer = await call.session.scalar(
        select(KnownCustomer).where(KnownCustomer.phone == phone, KnownCustomer.is_active.is_(True))
    )
    if customer is None:
        raise not_found("customer with phone", phone)
    return CustomerOut.model_validate(customer)


@router.post(
    "/customers",
    "Create a customer",
    permission=Permission.CUSTOMERS_WRITE,
    body=CustomerCreate,
    response=CustomerOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_customer(call: Call[CustomerCreate, None]) -> CustomerOut:
    """Create a known customer; a phone number already known is a `conflict` naming its customer."""
    await _refuse_taken_phone(call, call.body.phone)
    customer = KnownCustomer(**call.body.model_dump())
    call.session.add(customer)
    return await _out(call, customer)


@router.get(
    "/customers/{customer_id}",
    "Read a customer",
    permission=Permission.CUSTOMERS_READ,
    response=CustomerOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_customer(call: Call[None, None]) -> CustomerOut:
    """One known customer, active or not."""
    return CustomerOut.model_validate(await _load(call))


@router.patch(
    "/customers/{customer_id}",
    "Update a customer",
    permission=Permission.CUSTOMERS_WRITE,
    body=CustomerUpdate,
    response=CustomerOut,
    errors=("unauthorized", "forbidden", "not_found", "invalid", "conflict"),
)
async def update_customer(call: Call[CustomerUpdate, None]) -> CustomerOut:
    """Change the fields sent; `is_active: true` brings back a deleted customer."""
    customer = await _load(call)
    changes = call.body.model_dump(exclude_unset=True)
    if "phone" in changes and changes["phone"] != customer.phone:
        await _refuse_taken_phone(call, changes["phone"])
    for name, value in changes.items():
        setattr(customer, name, value)
    return await _out(call, customer)


@router.delete(
    "/customers/{customer_id}",
    "Delete a customer",
    permission=Permission.CUSTOMERS_WRITE,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def delete_customer(call: Call[None, None]) -> None:
    """Deactivate the customer: kiosks stop recognising the number, the row and its orders stay."""
    (await _load(call)).is_active = False
