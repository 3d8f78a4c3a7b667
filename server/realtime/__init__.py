"""The device WebSocket: transport, connection, its place in the app, uvicorn protocol and serving."""
