"""Who is there: branches, roles, users and their sessions, devices, known customers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from persistence.base import Base, Json, Timestamps, UTCDateTime, str_enum
from persistence.enums import DeviceKind


class Branch(Timestamps, Base):
    """A restaurant of the chain; money and business days are in its currency and time zone."""

    __tablename__ = "branches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    # Prices include tax; the rate (basis points) only splits the tax out on receipts.
    tax_rate_bp: Mapped[int] = mapped_column(default=0)
    # The service modes its kiosks offer, the first one the default of a new cart.
    service_modes: Mapped[list[str]] = mapped_column(Json, default=lambda: ["eat_in", "takeaway"])
    # [{"tax_category_id", "service_mode", "rate_bp"}]: the rate of each tax category in each mode; an item without
    # a category, or of one without a rate here, is taxed at `tax_rate_bp`.
    tax_rates: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    # The language of its menu where a kiosk asks for none, the languages its kiosks offer (the default first), and
    # the language of its kitchen's tickets (server/domain/translations.py).
    default_locale: Mapped[str] = mapped_column(String(16), default="en")
    locales: Mapped[list[str]] = mapped_column(Json, default=lambda: ["en"])
    kitchen_locale: Mapped[str] = mapped_column(String(16), default="en")
    address: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        CheckConstraint("tax_rate_bp >= 0 AND tax_rate_bp <= 10000", name="tax_rate_range"),
    )


class Role(Timestamps, Base):
    """A named set of permissions; `*` grants everything."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    permissions: Mapped[list[str]] = mapped_column(Json, default=list)


class User(Timestamps, Base):
    """A person who logs in over REST: admin, manager or staff.

    A user with a branch is limited to that branch; without one, to nothing narrower
    than the chain (admins).
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id", ondelete="RESTRICT"), index=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="RESTRICT"), index=True)
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    role: Mapped[Role] = relationship(lazy="joined")


class Session(Base):
    """One login of a user: the refresh-token family and what revokes its access tokens.

    `refresh_jti` is the one refresh token that may still be used; presenting an older
    one means it was stolen, and the whole session is revoked.
    """

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    refresh_jti: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    client_address: Mapped[str | None] = mapped_column(String(64))


class Device(Timestamps, Base):
    """A kiosk, payment terminal, kitchen display or order board of one branch.

    `secret_version` goes up on every secret rotation; device tokens carry it, so a
    rotation invalidates every token issued before.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[DeviceKind] = mapped_column(str_enum(DeviceKind, "device_kind"))
    name: Mapped[str] = mapped_column(String(120))
    secret_hash: Mapped[str] = mapped_column(String(255))
    secret_version: Mapped[int] = mapped_column(default=1)
    is_active: Mapped[bool] = mapped_column(default=True)
    # A kiosk's payment terminal; one terminal serves one kiosk.
    paired_terminal_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), unique=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A kitchen display's station: it shows only that station's lines (None: the whole kitchen). No ON DELETE, added
    # by plain ALTER TABLE (SQLite reflects no action there): deleting a station unsets it first (server/api).
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)
    info: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        CheckConstraint("paired_terminal_id IS NULL OR paired_terminal_id <> id", name="not_paired_to_itself"),
        Index("ix_devices_branch_id_kind", "branch_id", "kind"),
    )


class KnownCustomer(Timestamps, Base):
    """A customer known by phone number (E.164), shown by name on the kitchen ticket."""

    __tablename__ = "known_customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(default=True)
