"""Event models: the single source of truth for every message on the bus."""

from tickpipe.messages.base import Event
from tickpipe.messages.codec import (
    EVENT_TYPES,
    TOPIC_EVENT_TYPES,
    DecodeError,
    decode,
    decode_record,
    encode,
)
from tickpipe.messages.control import ControlAction, ControlCommand
from tickpipe.messages.deadletter import DeadLetter
from tickpipe.messages.executions import ExecutionReport, Liquidity, OrderStatus
from tickpipe.messages.features import FeatureVector
from tickpipe.messages.market import Instrument, QuoteTick, Side, TradeTick
from tickpipe.messages.orders import OrderRequest, OrderType
from tickpipe.messages.quality import DataQuality, FeedStatus, QualityIssue
from tickpipe.messages.risk import RiskDecision
from tickpipe.messages.signals import Signal

__all__ = [
    "EVENT_TYPES",
    "TOPIC_EVENT_TYPES",
    "ControlAction",
    "ControlCommand",
    "DataQuality",
    "DeadLetter",
    "DecodeError",
    "Event",
    "ExecutionReport",
    "FeatureVector",
    "FeedStatus",
    "Instrument",
    "Liquidity",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "QualityIssue",
    "QuoteTick",
    "RiskDecision",
    "Side",
    "Signal",
    "TradeTick",
    "decode",
    "decode_record",
    "encode",
]
