"""The edge and the application: configuration, auth, REST, the WebSocket endpoint, domain handlers."""

__version__ = "0.1.0"
