"""Shared fixtures. Brokers come from tests/brokers.py (env, testcontainers, or local JVM)."""

pytest_plugins = ["tests.brokers"]
