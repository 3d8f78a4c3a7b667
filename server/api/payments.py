"""REST routes: payments. (to be written)"""

from __future__ import annotations

from server.api.routing import ApiRouter

router = ApiRouter("payments")
