"""Metrics, traces, logs and health endpoints."""
