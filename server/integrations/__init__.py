"""Adapters to outside systems behind plain interfaces: the POS push."""
