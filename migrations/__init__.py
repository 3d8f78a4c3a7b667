"""Alembic migrations; run them with `python -m server migrate`."""
