"""Shapes of the data devices receive: carts, orders, payments, the menu, snapshots and connection frames."""
