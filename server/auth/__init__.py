"""Who is calling: passwords, tokens, principals and what they may do."""
