"""The bus port and its adapters (Kafka, in-memory)."""

from tickpipe.bus.base import Bus, BusError, Headers, Link, OutRecord, Producer, Record

__all__ = ["Bus", "BusError", "Headers", "Link", "OutRecord", "Producer", "Record"]
