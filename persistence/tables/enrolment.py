"""Enrolment of devices without typing secrets: pairing codes, and the one-step links of the demo.

A fresh app asks for a pairing code: a six-digit `code` for people to read, and a random
poll token only the app holds (stored as its SHA-256 `poll_token_hash`). Someone with
devices:write claims the code, naming or creating the device (`device_id`, `claimed_at`);
the app's next poll gets the device's id and a new secret (`used_at`): the secret is made
then, so it is never stored in clear. An enrolment link is a row claimed from the start,
without a code: its token is the poll token, redeemed once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from persistence.base import Base, Timestamps, UTCDateTime


class PairingCode(Timestamps, Base):
    """One enrolment: a pairing code (or a link's token) and the device it enrols once claimed."""

    __tablename__ = "pairing_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Six digits, unique among the rows kept; None for an enrolment link.
    code: Mapped[str | None] = mapped_column(String(6), unique=True)
    poll_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    client_address: Mapped[str | None] = mapped_column(String(64))
