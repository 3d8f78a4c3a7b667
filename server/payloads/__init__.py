"""Shapes of the data devices receive: carts, orders, payments, the menu, snapshots and connection frames.

One pydantic model per thing; the server builds its data from it, and the REST routes and
the AsyncAPI document use the same models.
"""
