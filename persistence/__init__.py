"""Storage: the engine, the tables, and the operations on them. Knows nothing of HTTP or sockets."""
