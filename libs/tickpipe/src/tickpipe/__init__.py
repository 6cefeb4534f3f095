"""tickpipe shared library: messages, bus, cache, settings, telemetry and the service runner."""

__version__ = "0.1.0"
