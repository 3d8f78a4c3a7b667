"""The realtime layer: frames, channels, hub and brokers. Knows nothing of orders."""
