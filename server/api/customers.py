"""REST routes: customers. (to be written)"""

from __future__ import annotations

from server.api.routing import ApiRouter

router = ApiRouter("customers")
