"""REST routes: branches, the restaurants of the chain.

A branch is never deleted (orders, devices and stock refer to it): it is disabled with
`is_active` false, which closes the open sockets of its devices and users at once (4003).
Its currency gives every amount recorded there its meaning, so it is
fixed once the branch has orders.

A branch offers its kiosks' customers one or more service modes (eat in, take away), the
first the mode a new cart starts in. Prices include tax: each cart line is taxed at the
branch's rate for its item's tax category in the cart's mode (`tax_rates`, each pair of
category and mode at most once), and an item without a category, or of a category with no
rate for the mode, at the branch's default `tax_rate_bp`. A rate for a mode the branch does
not offer is kept, and applies once it offers the mode again.

A branch shows its menu in the `locales` its kiosks offer, `default_locale` (one of them) where
a kiosk asks for none; its kitchen's tickets are in `kitchen_locale`, which its customers need
not be offered. Texts missing in a locale fall back to the default's, then to the base names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError
from sqlalchemy import func, or_, select

from persistence.enums import ServiceMode
from persistence.tables import Branch, Order
from server.api.fields import FieldError, PatchBody, field_error
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.revocation import close_branch_sockets
from server.api.routing import ApiRouter, Call
from server.api.tax_categories import locked_missing
from server.auth.permissions import Permission
from server.errors import ApiError, not_found
from server.validation import Input, Locale, RowId

router = ApiRouter("branches")


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise PydanticCustomError(
            "unknown_timezone", "unknown time zone {zone}; use an IANA name such as Europe/Berlin", {"zone": value}
        ) from exc
    return value


def _distinct_modes(value: list[ServiceMode]) -> list[ServiceMode]:
    twice = sorted({mode.value for n, mode in enumerate(value) if mode in value[:n]})
    if twice:
        raise PydanticCustomError("duplicate_service_mode", "listed twice: {modes}", {"modes": ", ".join(twice)})
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
DefaultTaxRate = Annotated[
    TaxRate,
    Field(
        description="tax included in prices, in basis points (1900 is 19 %), of an item without a tax category or "
        "of a category `tax_rates` gives no rate in the cart's service mode"
    ),
]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ServiceModes = Annotated[
    list[ServiceMode],
    Field(min_length=1, max_length=len(ServiceMode), description="the modes offered, the first a new cart's"),
    AfterValidator(_distinct_modes),
]


def _distinct_locales(value: list[str]) -> list[str]:
    twice = sorted({locale for n, locale in enumerate(value) if locale in value[:n]})
    if twice:
        raise PydanticCustomError("duplicate_locale", "listed twice: {locales}", {"locales": ", ".join(twice)})
    return value


Locales = Annotated[
    list[Locale],
    Field(min_length=1, max_length=20, description="the locales its kiosks offer, `default_locale` among them"),
    AfterValidator(_distinct_locales),
]
# More than every pair of mode and category a chain could need, few enough to check at once.
MAX_TAX_RATES = 500
DEFAULT_SERVICE_MODES = (ServiceMode.EAT_IN, ServiceMode.TAKEAWAY)


class TaxRateOut(BaseModel):
    """The rate of one tax category in one service mode."""

    tax_category_id: int
    service_mode: ServiceMode
    rate_bp: int


class TaxRateIn(Input):
    """The rate of one tax category (one that exists) in one service mode."""

    model_config = ConfigDict(extra="forbid")

    tax_category_id: RowId
    service_mode: ServiceMode
    rate_bp: TaxRate


TaxRates = Annotated[
    list[TaxRateIn],
    Field(max_length=MAX_TAX_RATES, description="each pair of tax category and service mode at most once"),
]


class BranchOut(BaseModel):
    """A branch as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    currency: str
    timezone: str
    tax_rate_bp: int = Field(description="the default rate, in basis points")
    service_modes: list[ServiceMode] = Field(description="the modes offered, the first a new cart's")
    tax_rates: list[TaxRateOut] = Field(description="the rate of each tax category in each service mode")
    default_locale: str = Field(description="the menu's locale where a kiosk asks for none")
    locales: list[str] = Field(description="the locales its kiosks offer, the default among them")
    kitchen_locale: str = Field(description="the locale of its kitchen's tickets")
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
    tax_rate_bp: DefaultTaxRate = 0
    service_modes: ServiceModes = Field(default_factory=lambda: list(DEFAULT_SERVICE_MODES))
    tax_rates: TaxRates = Field(default_factory=list)
    default_locale: Locale | None = Field(default=None, description="one of `locales`; left out: the first of them")
    locales: Locales = Field(default_factory=lambda: ["en"])
    kitchen_locale: Locale | None = Field(default=None, description="left out: `default_locale`")
    address: Address | None = None


class BranchUpdate(PatchBody):
    """Changes to a branch; only the fields sent change. `is_active` false disables it."""

    clearable = frozenset({"address"})

    name: BranchName | None = None
    currency: Currency | None = None
    timezone: Timezone | None = None
    tax_rate_bp: DefaultTaxRate | None = None
    service_modes: ServiceModes | None = None
    tax_rates: TaxRates | None = Field(default=None, description="the complete new list")
    default_locale: Locale | None = Field(default=None, description="one of `locales` (as sent, or as they are)")
    locales: Locales | None = Field(default=None, description="the complete new list")
    kitchen_locale: Locale | None = None
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


def _require_default_offered(default: str, locales: list[str]) -> None:
    """`invalid` (type `locale_not_offered`) unless the branch offers its default locale."""
    if default not in locales:
        message = f"default_locale {default} is not one of locales ({', '.join(locales)})"
        raise ApiError(
            "invalid", "invalid body", {"errors": [field_error(("default_locale",), message, "locale_not_offered")]}
        )


async def _require_known_rates(call: Call[Any, None], rates: list[TaxRateIn]) -> None:
    """`invalid`, naming each rate by its index, for a pair of category and mode rated twice or a category that does
    not exist. The categories that do are locked (shared) until commit: none is deleted under a rate naming it."""
    missing = await locked_missing(call, {rate.tax_category_id for rate in rates})
    first: dict[tuple[int, ServiceMode], int] = {}
    errors: list[FieldError] = []
    for n, rate in enumerate(rates):
        pair = (rate.tax_category_id, rate.service_mode)
        if rate.tax_category_id in missing:
            message = f"tax category {rate.tax_category_id} does not exist"
            errors.append(field_error(("tax_rates", n, "tax_category_id"), message, "unknown_tax_category"))
        elif pair in first:
            mode = rate.service_mode.value
            message = f"tax category {rate.tax_category_id} in {mode} is rated twice (first at index {first[pair]})"
            errors.append(field_error(("tax_rates", n), message, "duplicate_rate"))
        first.setdefault(pair, n)
    if errors:
        raise ApiError("invalid", "invalid body", {"errors": errors})


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
    """Open a branch with its currency, time zone, service modes and tax rates; only chain-wide users may."""
    call.principal.require_branch(None)
    await _require_free_name(call, call.body.name)
    await _require_known_rates(call, call.body.tax_rates)
    values = call.body.model_dump(mode="json")
    values["default_locale"] = values["default_locale"] or values["locales"][0]
    values["kitchen_locale"] = values["kitchen_locale"] or values["default_locale"]
    _require_default_offered(values["default_locale"], values["locales"])
    branch = Branch(**values, is_active=True)
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
    """Change a branch, or disable it with `is_active` false; the currency is fixed once it has orders.

    `tax_rates`, when sent, is the complete new list. Open carts are priced at the new rates by their next command.
    """
    branch = await _load_branch(call, call.path_int("branch_id"))
    changes = call.body.model_dump(mode="json", exclude_unset=True)
    if call.body.tax_rates is not None:
        await _require_known_rates(call, call.body.tax_rates)
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
    if "default_locale" in changes or "locales" in changes:
        _require_default_offered(
            changes.get("default_locale", branch.default_locale), changes.get("locales", branch.locales)
        )
    if branch.is_active and changes.get("is_active") is False:
        await close_branch_sockets(call, branch.id)
    for field, value in changes.items():
        setattr(branch, field, value)
    await call.session.flush()
    return BranchOut.model_validate(branch)
