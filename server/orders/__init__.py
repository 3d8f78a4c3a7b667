"""Carts priced, orders placed and moved through their states, payment results applied."""
