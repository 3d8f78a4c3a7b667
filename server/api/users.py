"""REST routes: users, managed by admins across the chain and by managers in their branch.

Users are never deleted, since orders and sessions point at them: DELETE disables. Three
rules keep the keys safe. A branch-scoped caller sees and manages only its own branch.
Nobody grants a role, or manages a user, holding permissions they lack themselves. Nobody
disables themselves or demotes themselves out of `users:write`, so a chain cannot lock
itself out. Disabling a user, moving it to another branch, giving it another role or
changing its password revokes its sessions, so its tokens stop working and its open sockets
close at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import or_, select

from persistence.tables import Branch, Role, User
from server.api.fields import PatchBody
from server.api.pagination import Page, PageQuery, fetch_page
from server.api.revocation import end_sessions
from server.api.routing import ApiRouter, Call
from server.auth.passwords import hash_secret
from server.auth.permissions import Permission, grants
from server.auth.principals import Principal
from server.errors import ApiError, not_found
from server.validation import Input, RowId, invalid_field

router = ApiRouter("users")


def _normalise_username(value: object) -> object:
    # Login looks usernames up trimmed and lower-cased; store them the same way.
    return value.strip().lower() if isinstance(value, str) else value


Username = Annotated[
    str,
    BeforeValidator(_normalise_username),
    Field(pattern=r"^[a-z0-9._-]{3,64}$", description="3-64 of a-z 0-9 . _ -, stored lower-cased"),
]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Password = Annotated[str, Field(min_length=8, max_length=256)]


class UserOut(BaseModel):
    """A user as the API shows it; the password hash never leaves the server."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    full_name: str | None
    email: str | None
    role: str
    role_id: int
    branch_id: int | None
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @field_validator("role", mode="before")
    @classmethod
    def _role_name(cls, value: object) -> object:
        # Read from a `User`, `role` is the related row; the API shows its name.
        return value.name if isinstance(value, Role) else value


class UserCreate(Input):
    """A new user; `branch_id` null makes a chain-wide user (admins only)."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password
    role_id: RowId
    branch_id: RowId | None = None
    full_name: FullName | None = None
    email: Email | None = None


class UserUpdate(PatchBody):
    """Changes to a user; only the fields sent change, and a new password ends its sessions."""

    clearable = frozenset({"full_name", "email", "branch_id"})

    full_name: FullName | None = None
    email: Email | None = None
    role_id: RowId | None = None
    branch_id: RowId | None = None
    is_active: bool | None = None
    password: Password | None = None


class UserQuery(PageQuery):
    """Filters of the user list."""

    branch_id: RowId | None = None
    role: str | None = Field(default=None, description="role name")
    is_active: bool | None = None
    q: str | None = Field(
        default=None, min_length=1, max_length=64, description="part of username or full name, any case"
    )


async def _load_user(call: Call[UserUpdate, None] | Call[None, None], user_id: int) -> User:
    user = await call.session.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    call.require_visible("user", user_id, user.branch_id)
    return user


def _require_manageable(principal: Principal, user: User) -> None:
    # Changing the password of a stronger user would be a way to become them.
    if not principal.holds_all(user.role.permissions):
        raise ApiError("forbidden", "this user's role holds permissions you lack", {"role": user.role.name})


async def _role_to_grant(call: Call[UserCreate, None] | Call[UserUpdate, None], role_id: int) -> Role:
    role = await call.session.get(Role, role_id)
    if role is None:
        raise invalid_field("role_id", f"role {role_id} does not exist")
    if not call.principal.holds_all(role.permissions):
        missing = sorted(set(role.permissions) - call.principal.permissions)
        raise ApiError("forbidden", f"role {role.name} holds permissions you lack", {"missing": missing})
    return role


async def _require_branch_to_join(call: Call[UserCreate, None] | Call[UserUpdate, None], branch_id: int | None) -> None:
    call.principal.require_branch(branch_id)
    if branch_id is not None and await call.session.get(Branch, branch_id) is None:
        raise invalid_field("branch_id", f"branch {branch_id} does not exist")


def _is_self(principal: Principal, user: User) -> bool:
    return principal.kind == "user" and principal.id == user.id


def _forbid_self_lockout(principal: Principal, user: User, role: Role, is_active: bool) -> None:
    if not _is_self(principal, user):
        return
    if not is_active:
        raise ApiError("conflict", "you cannot disable yourself", {"field": "is_active"})
    if not grants(role.permissions, Permission.USERS_WRITE):
        raise ApiError("conflict", "you cannot take users:write away from yourself", {"field": "role_id"})


@router.get(
    "/users",
    "List users",
    permission=Permission.USERS_READ,
    query=UserQuery,
    response=Page[UserOut],
    errors=("unauthorized", "forbidden", "invalid"),
)
async def list_users(call: Call[None, UserQuery]) -> Page[UserOut]:
    """Users the caller may see, by id; a branch-scoped caller sees only its branch."""
    query = call.query
    statement = select(User).order_by(User.id)
    scope = call.principal.branch_scope()
    if scope is not None:
        statement = statement.where(User.branch_id == scope)
    if query.branch_id is not None:
        statement = statement.where(User.branch_id == query.branch_id)
    if query.role is not None:
        statement = statement.where(User.role.has(Role.name == query.role))
    if query.is_active is not None:
        statement = statement.where(User.is_active == query.is_active)
    if query.q is not None:
        statement = statement.where(
            or_(User.username.icontains(query.q, autoescape=True), User.full_name.icontains(query.q, autoescape=True))
        )
    rows, total = await fetch_page(call.session, statement, query)
    return Page[UserOut](
        items=[UserOut.model_validate(row) for row in rows], total=total, limit=query.limit, offset=query.offset
    )


@router.get(
    "/users/{user_id}",
    "Read a user",
    permission=Permission.USERS_READ,
    response=UserOut,
    errors=("unauthorized", "forbidden", "not_found"),
)
async def read_user(call: Call[None, None]) -> UserOut:
    """One user of the caller's scope."""
    return UserOut.model_validate(await _load_user(call, call.path_int("user_id")))


@router.post(
    "/users",
    "Create a user",
    permission=Permission.USERS_WRITE,
    body=UserCreate,
    response=UserOut,
    status_code=201,
    errors=("unauthorized", "forbidden", "invalid", "conflict"),
)
async def create_user(call: Call[UserCreate, None]) -> UserOut:
    """Create a user in the caller's scope with a role no stronger than the caller's own."""
    body = call.body
    await _require_branch_to_join(call, body.branch_id)
    role = await _role_to_grant(call, body.role_id)
    if await call.session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise ApiError("conflict", f"the username {body.username} is taken", {"field": "username"})
    user = User(
        username=body.username,
        password_hash=await hash_secret(body.password),
        role=role,
        branch_id=body.branch_id,
        full_name=body.full_name,
        email=body.email,
        is_active=True,
    )
    call.session.add(user)
    await call.session.flush()
    return UserOut.model_validate(user)


@router.patch(
    "/users/{user_id}",
    "Update a user",
    permission=Permission.USERS_WRITE,
    body=UserUpdate,
    response=UserOut,
    errors=("unauthorized", "forbidden", "invalid", "not_found", "conflict"),
)
async def update_user(call: Call[UserUpdate, None]) -> UserOut:
    """Change a user's name, email, role, branch, state or password; only the fields sent change."""
    user = await _load_user(call, call.path_int("user_id"))
    _require_manageable(call.principal, user)
    changes = call.body.model_dump(exclude_unset=True)

    # Check everything before changing anything
    if "branch_id" in changes:
        await _require_branch_to_join(call, changes["branch_id"])
    role = await _role_to_grant(call, changes.pop("role_id")) if "role_id" in changes else user.role
    _forbid_self_lockout(call.principal, user, role, changes.get("is_active", user.is_active))

    # Apply, and end the sessions a disable, a new branch or role, or a new password invalidates
    own_sessions = [user.id]
    if user.is_active and changes.get("is_active") is False:
        await end_sessions(call, own_sessions, "user_disabled")
    elif role.id != user.role_id or changes.get("branch_id", user.branch_id) != user.branch_id:
        # Its sockets would otherwise go on with the old branch and permissions: it logs in again.
        await end_sessions(call, own_sessions, "user_changed")
    user.role = role
    password = changes.pop("password", None)
    if password is not None:
        user.password_hash = await hash_secret(password)
        # Someone changing their own password stays logged in where they did it; every other session ends.
        keep = call.principal.session_id if _is_self(call.principal, user) else None
        await end_sessions(call, own_sessions, "password_changed", keep=keep)
    for field, value in changes.items():
        setattr(user, field, value)
    await call.session.flush()
    return UserOut.model_validate(user)


@router.delete(
    "/users/{user_id}",
    "Disable a user",
    permission=Permission.USERS_WRITE,
    status_code=204,
    errors=("unauthorized", "forbidden", "not_found", "conflict"),
)
async def disable_user(call: Call[None, None]) -> None:
    """Disable a user and end its sessions; the row stays, since orders and sessions refer to it."""
    user = await _load_user(call, call.path_int("user_id"))
    _require_manageable(call.principal, user)
    _forbid_self_lockout(call.principal, user, user.role, is_active=False)
    user.is_active = False
    await end_sessions(call, [user.id], "user_disabled")
