"""Permissions, and the three roles every installation starts with.

A role is a named set of permissions (`*` is all of them). Where a user belongs to a
branch, every permission is limited to that branch; see `Principal`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection


class Permission(enum.StrEnum):
    """What a role may do; checked by every REST route and command."""

    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    ROLES_READ = "roles:read"
    ROLES_WRITE = "roles:write"
    BRANCHES_READ = "branches:read"
    BRANCHES_WRITE = "branches:write"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    MENU_READ = "menu:read"
    MENU_WRITE = "menu:write"
    STOCK_WRITE = "stock:write"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    PAYMENTS_READ = "payments:read"
    PAYMENTS_REFUND = "payments:refund"


ALL = "*"

ADMIN_ROLE = "admin"
MANAGER_ROLE = "manager"
STAFF_ROLE = "staff"

# Created by `create-admin` and `seed-demo` when missing; admins may edit them or add more.
DEFAULT_ROLES: dict[str, tuple[str, list[str]]] = {
    ADMIN_ROLE: ("Everything, in every branch.", [ALL]),
    MANAGER_ROLE: (
        "Runs one branch: its staff, devices, stock, orders and the customers.",
        [
            Permission.USERS_READ,
            Permission.USERS_WRITE,
            Permission.ROLES_READ,
            Permission.BRANCHES_READ,
            Permission.DEVICES_READ,
            Permission.DEVICES_WRITE,
            Permission.MENU_READ,
            Permission.STOCK_WRITE,
            Permission.CUSTOMERS_READ,
            Permission.CUSTOMERS_WRITE,
            Permission.ORDERS_READ,
            Permission.ORDERS_WRITE,
            Permission.PAYMENTS_READ,
            Permission.PAYMENTS_REFUND,
        ],
    ),
    STAFF_ROLE: (
        "Works in one branch: reads it, changes stock and availability, runs the kitchen and the counter.",
        [
            Permission.BRANCHES_READ,
            Permission.DEVICES_READ,
            Permission.MENU_READ,
            Permission.STOCK_WRITE,
            Permission.ORDERS_READ,
            Permission.ORDERS_WRITE,
            Permission.PAYMENTS_READ,
        ],
    ),
}


def grants(permissions: Collection[str], permission: Permission) -> bool:
    """True when a role with `permissions` is allowed `permission`."""
    return ALL in permissions or permission in permissions


def known_permission(value: str) -> bool:
    """True for `*` and every member of `Permission`."""
    return value == ALL or value in Permission._value2member_map_
