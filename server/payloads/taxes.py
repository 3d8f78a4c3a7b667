"""The tax a cart or order contains, per rate: what a receipt lists under its lines."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.domain.pricing import Totals


class RateTaxView(BaseModel):
    """The lines taxed at one rate: their total as charged, the tax it contains and the rest, net."""

    model_config = ConfigDict(extra="forbid")

    rate_bp: int = Field(description="the rate in basis points: 1900 is 19 %")
    net: int
    tax: int
    total: int = Field(description="net + tax: what those lines cost")


def taxes_view(totals: Totals) -> list[RateTaxView]:
    """The totals' tax per rate, lowest rate first."""
    return [RateTaxView(rate_bp=r.rate_bp, net=r.net, tax=r.tax, total=r.total) for r in totals.taxes]


def stored_taxes(totals: Totals) -> list[dict[str, Any]]:
    """The totals' tax per rate as an order keeps it (`orders.taxes`)."""
    return [view.model_dump() for view in taxes_view(totals)]
