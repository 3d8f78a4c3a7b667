"""Adapters to outside systems behind plain interfaces (DESIGN.md decision 10): the POS push."""
