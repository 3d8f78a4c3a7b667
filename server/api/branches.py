"""REST routes: branches, the restaurants of the chain.

A branch is never deleted (orders, devices and stock refer to it): it is disabled with
`is_active` false, which closes the open sockets of its devices and users at once (4003).
Its currency gives every amount recorded there its meaning, so it is
fixed once the branch has orders.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError
from sqlalchemy import func, or_, select

from persistence.tables import Branch, Order
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.revocation import close_branch_sockets
from server.api.routing import ApiRouter, Call
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import Input

router = ApiRouter("branches")


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise PydanticCustomError(
            "unknown_timezone", "unknown time zone {zone}; use an IANA name such as Europe/Berlin", {"zone": value}
        ) from exc
    return value


BranchName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR")]
Timezone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_known_zone),
    Field(description="IANA time zone, e.g. Europe/Berlin"),
]
TaxRate = Annotated[int, Field(ge=0, le=10000, description="tax included in prices, in basis points")]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class BranchOut(BaseModel):
    """A branch as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    currency: str
    timezone: str
    tax_rate_bp: int
    address: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class BranchCreate(Input):
    """A new branch."""

    model_config = ConfigDict(extra="forbid")

    name: BranchName
    currency: Currency
    timezone: Timezone
    tax_rate_bp: TaxRate = 0
    address: Address | None = None


class BranchUpdate(PatchBody):
    """Changes to a branch; only the fields sent change. `is_active` false disables it."""

    clearable = frozenset({"address"})

    name: BranchName | None = None
    currency: Currency | None = None
    timezone: Timezone | None = None
    tax_rate_bp: TaxRate | None = None
    address: Address | None = None
    is_active: bool | None = None


class BranchQuery(PageQuery):
    """Filters of the branch list."""

    is_active: bool | None = None
    q: str | None = Field(default=None, min_length=1, max_length=120, description="part of name or address, any case")


async def _load_branch(call: Call[BranchUpdate, None] | Call[None, None], branch_id: int) -> Branch:
    branch = await call.session.get(Branch, branch_id)
    if branch is None:
        raise not_found("branch", branch_id)
    call.require_visible("branch", branch_id, branch.id)
    return branch


async def _require_free_name(
    call: Call[BranchCreate, None] | Call[BranchUpdate, None], name: str, renamed: Branch | None = None
) -> None:
    # Case-insensitive, so that "Alpha" and "alpha" are not two restaurants on a report.
    statement = select(Branch.id).where(func.lower(Branch.name) == name.lower())
    if renamed is not None:
        statement = statement.where(Branch.id != renamed.id)
    taken = await call.session.scalar(statement)
    if taken is not None:
        raise ApiError("conflict", f"a branch named {name} already exists", {"field": "name", "branch_id": taken})


@router.get(
    "/branches",
    "List branches",
    permission=Permission.BRANCHES_READ,
    query=BranchQuery,
    response=Page[BranchOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_branches(call: Call[None, BranchQuery]) -> Page[BranchOut]:
    """Branches the caller may see, by id; a branch-scoped caller sees only its own."""
    query = call.query
    statement = select(Branch).order_by(Branch.id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(Branch.id == scope)
    if query.is_active is not None:
        statement = statement.where(Branch.is_active == query.is_active)
    if query.q is not None:
        statement = statement.where(
            or_(Branch.name.icontains(query.q, autoescape=True), Branch.address.icontains(query.q, autoescape=True))
        )
    rows, total = await fetch_page(call.session, statement, query)
    return Page[BranchOut](
        items=[BranchOut.model_validate(row) for row in rows], total=total, limit=query.limit, offset=query.offset
    )


@router.get(
    "/branches/{branch_id}",
    "Read a branch",
    permission=Permission.BRANCHES_READ,
    response=BranchOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_branch(call: Call[None, None]) -> BranchOut:
    """One branch of the caller's scope."""
    return BranchOut.model_validate(await _load_branch(call, call.path_int("branch_id")))


@router.post(
    "/branches",
    "Create a branch",
    permission=Permission.BRANCHES_WRITE,
    body=BranchCreate,
    response=BranchOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_branch(call: Call[BranchCreate, None]) -> BranchOut:
    """Open a branch with its currency, time zone and tax rate; only chain-wide users may."""
    call.principal.require_branch(None)
    await _require_free_name(call, call.body.name)
    branch = Branch(**call.body.model_dump(), is_active=True)
    call.session.add(branch)
    await call.session.flush()
    return BranchOut.model_validate(branch)


@router.patch(
    "/branches/{branch_id}",
    "Update a branch",
    permission=Permission.BRANCHES_WRITE,
    body=BranchUpdate,
    response=BranchOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_branch(call: Call[BranchUpdate, None]) -> BranchOut:
    """Change a branch, or disable it with `is_active` false; the currency is fixed once it has orders."""
    branch = await _load_branch(call, call.path_int("branch_id"))
    changes = call.body.model_dump(exclude_unset=True)
    if "name" in changes and changes["name"] != branch.name:
        await _require_free_name(call, changes["name"], renamed=branch)
    if "currency" in changes and changes["currency"] != branch.currency:
        has_orders = await call.session.scalar(select(Order.id).where(Order.branch_id == branch.id).limit(1))
        if has_orders is not None:
            raise ApiError(
                "conflict",
                "the branch has orders; changing its currency would change what their amounts mean",
                {"field": "currency"},
            )
    if branch.is_active and changes.get("is_active") is False:
        await close_branch_sockets(call, branch.id)
    for field, value in changes.items():
        setattr(branch, field, value)
    await call.session.flush()
    return BranchOut.model_validate(branch)
