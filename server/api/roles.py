"""REST routes: roles, the named permission sets users are given.

Roles are chain-wide: anyone with `roles:read` may list them, and only chain-wide users
with `roles:write` may change them. Nobody hands out, edits or deletes a role holding
permissions they do not hold themselves, and nobody takes permissions away from the role
they hold (another user must), so neither an escalation nor a self-lockout goes through
this door. The three default roles may be edited but keep their names and stay. Changing
a role's permissions ends the sessions of every user holding it, so they log in again with
the new ones, and their open sockets close.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import func, select

from persistence.tables import Role, User
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.revocation import end_sessions
from server.api.routing import ApiRouter, Call
from server.auth.permissions import DEFAULT_ROLES, Permission, known_permission
from server.auth.principals import Principal
from server.errors import ApiError, not_found
from server.validation import Input

router = ApiRouter("roles")


def _known_permissions(values: list[str]) -> list[str]:
    unknown = sorted({value for value in values if not known_permission(value)})
    if unknown:
        raise PydanticCustomError(
            "unknown_permission", "unknown permissions: {unknown}", {"unknown": ", ".join(unknown)}
        )
    return sorted(set(values))


RoleName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Permissions = Annotated[
    list[str],
    Field(max_length=100, description="permission names, or `*` for all"),
    AfterValidator(_known_permissions),
]


class RoleOut(BaseModel):
    """A role and its permissions (sorted)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    permissions: list[str]
    created_at: datetime
    updated_at: datetime

    @field_validator("permissions")
    @classmethod
    def _sorted(cls, value: list[str]) -> list[str]:
        # Writes store them sorted; rows seeded elsewhere (the default roles) may not be.
        return sorted(set(value))


class RoleCreate(Input):
    """A new role."""

    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: Description | None = None
    permissions: Permissions = Field(default_factory=list)


class RoleUpdate(PatchBody):
    """Changes to a role; only the fields sent change."""

    clearable = frozenset({"description"})

    name: RoleName | None = None
    description: Description | None = None
    permissions: Permissions | None = None


async def _load_role(call: Call[RoleUpdate, None] | Call[None, None], role_id: int) -> Role:
    role = await call.session.get(Role, role_id)
    if role is None:
        raise not_found("role", role_id)
    return role


async def _require_free_name(
    call: Call[RoleCreate, None] | Call[RoleUpdate, None], name: str, renamed: Role | None = None
) -> None:
    # Case-insensitive, so that "Manager" beside "manager" cannot confuse whoever assigns roles.
    statement = select(Role.id).where(func.lower(Role.name) == name.lower())
    if renamed is not None:
        statement = statement.where(Role.id != renamed.id)
    taken = await call.session.scalar(statement)
    if taken is not None:
        raise ApiError("conflict", f"a role named {name} already exists", {"field": "name", "role_id": taken})


def _require_grantable(principal: Principal, permissions: Collection[str]) -> None:
    if not principal.holds_all(permissions):
        missing = sorted(set(permissions) - principal.permissions)
        raise ApiError("forbidden", "you may only handle permissions you hold yourself", {"missing": missing})


@router.get(
    "/roles",
    "List roles",
    permission=Permission.ROLES_READ,
    query=PageQuery,
    response=Page[RoleOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_roles(call: Call[None, PageQuery]) -> Page[RoleOut]:
    """Every role of the chain, by id."""
    rows, total = await fetch_page(call.session, select(Role).order_by(Role.id), call.query)
    return Page[RoleOut](
        items=[RoleOut.model_validate(row) for row in rows],
        total=total,
        limit=call.query.limit,
        offset=call.query.offset,
    )


@router.get(
    "/roles/{role_id}",
    "Read a role",
    permission=Permission.ROLES_READ,
    response=RoleOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_role(call: Call[None, None]) -> RoleOut:
    """One role with its permissions."""
    return RoleOut.model_validate(await _load_role(call, call.path_int("role_id")))


@router.post(
    "/roles",
    "Create a role",
    permission=Permission.ROLES_WRITE,
    body=RoleCreate,
    response=RoleOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_role(call: Call[RoleCreate, None]) -> RoleOut:
    """Create a role from known permissions the caller holds; names are unique, whatever their case."""
    call.principal.require_branch(None)
    _require_grantable(call.principal, call.body.permissions)
    await _require_free_name(call, call.body.name)
    role = Role(name=call.body.name, description=call.body.description, permissions=call.body.permissions)
    call.session.add(role)
    await call.session.flush()
    return RoleOut.model_validate(role)


@router.patch(
    "/roles/{role_id}",
    "Update a role",
    permission=Permission.ROLES_WRITE,
    body=RoleUpdate,
    response=RoleOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_role(call: Call[RoleUpdate, None]) -> RoleOut:
    """Change a role's name, description or permissions; default roles keep their names."""
    call.principal.require_branch(None)
    role = await _load_role(call, call.path_int("role_id"))
    _require_grantable(call.principal, role.permissions)
    changes = call.body.model_dump(exclude_unset=True)

    if "name" in changes and changes["name"] != role.name:
        if role.name in DEFAULT_ROLES:
            raise ApiError("conflict", f"the default role {role.name} cannot be renamed", {"field": "name"})
        await _require_free_name(call, changes["name"], renamed=role)
    if "permissions" in changes:
        _require_grantable(call.principal, changes["permissions"])
        taken_away = set(role.permissions) - set(changes["permissions"])
        if role.name == call.principal.role and taken_away:
            # Otherwise a caller could strip the role they act with, e.g. `*` from admin, and lock the chain out.
            raise ApiError(
                "conflict",
                "you cannot take permissions away from your own role; ask another user to",
                {"field": "permissions", "removed": sorted(taken_away)},
            )

    if set(changes.get("permissions", role.permissions)) != set(role.permissions):
        # Every holder's sockets would otherwise go on with the permissions of before: they log in again.
        holders = (await call.session.scalars(select(User.id).where(User.role_id == role.id))).all()
        await end_sessions(call, holders, "role_changed")
    for field, value in changes.items():
        setattr(role, field, value)
    await call.session.flush()
    return RoleOut.model_validate(role)


@router.delete(
    "/roles/{role_id}",
    "Delete a role",
    permission=Permission.ROLES_WRITE,
    status_code=204,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def delete_role(call: Call[None, None]) -> None:
    """Delete a role nobody has, disabled users included; the default roles stay."""
    call.principal.require_branch(None)
    role = await _load_role(call, call.path_int("role_id"))
    if role.name in DEFAULT_ROLES:
        raise ApiError("conflict", f"the default role {role.name} cannot be deleted")
    _require_grantable(call.principal, role.permissions)
    holders = await call.session.scalar(select(func.count()).select_from(User).where(User.role_id == role.id))
    if holders:
        raise ApiError("conflict", f"{holders} users have the role {role.name}", {"users": holders})
    await call.session.delete(role)
